#!/usr/bin/env bash
# Host dependencies of the kata-cr test bed (integration/testbed) and the build.
# Idempotent: installs only what is missing, and says nothing when all is there.
set -euo pipefail

# command -> Debian package (host is Debian 12)
declare -A need=(
  [debootstrap]=debootstrap
  [protoc]=protobuf-compiler
  [unshare]=util-linux
  [pivot_root]=util-linux
  [nsenter]=util-linux
  [sha256sum]=coreutils
  [tar]=tar
  [gzip]=gzip
  [cpio]=cpio
  [xz]=xz-utils
  [python3]=python3
  # the VM proof (integration/vm): qemu under TCG
  [qemu-system-x86_64]=qemu-system-x86
)
# files -> package (things that are not a command)
declare -A needfile=(
  [/usr/share/keyrings/debian-archive-keyring.gpg]=debian-archive-keyring
  # to build virtiofsd (below)
  [/usr/include/seccomp.h]=libseccomp-dev
  [/usr/include/cap-ng.h]=libcap-ng-dev
  # the text of the benchmark report's plots (make bench)
  [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]=fonts-dejavu-core
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for f in "${!needfile[@]}"; do
  [ -e "$f" ] || missing+=("${needfile[$f]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The VM proof's user-space device backends, from crates.io (Debian 12 has
# neither): the vsock one gives guest ports as a hybrid-vsock unix socket,
# as Kata's clh/fc/dragonball do; virtiofsd shares rootfses as Kata does.
tools=${KATA_CR_CACHE:-/var/cache/kata-cr}/vm/tools
declare -A crates=([vhost-device-vsock]=0.3.0 [virtiofsd]=1.14.0)
for c in "${!crates[@]}"; do
  [ -x "$tools/bin/$c" ] && continue
  echo "deps.sh: cargo install $c ${crates[$c]} (into $tools)" >&2
  cargo install --quiet --locked --version "${crates[$c]}" --root "$tools" "$c" >&2
done
