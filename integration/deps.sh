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
)
# files -> package (things that are not a command)
declare -A needfile=(
  [/usr/share/keyrings/debian-archive-keyring.gpg]=debian-archive-keyring
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for f in "${!needfile[@]}"; do
  [ -e "$f" ] || missing+=("${needfile[$f]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
