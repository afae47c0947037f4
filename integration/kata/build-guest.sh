#!/usr/bin/env bash
# Builds the guest of the real-Kata test bed (integration/testbed run --kata):
# what an operator has, turned C/R-capable the way an operator does it.
#
#   integration/kata/build-guest.sh OUT_DIR KATA_DIR [BINS_DIR]
#
#  1. A Kata initrd as Kata's osbuilder makes one with AGENT_INIT=yes (the
#     x86_64 release initrd is Alpine: busybox and the agent): Kata's agent
#     (KATA_DIR/kata-agent, with the libraries it links) as /sbin/init,
#     /init -> /sbin/init; busybox and kmod as a distro base has them.
#  2. guest-overlay/build-guest.sh --initrd on it: criu and kata-cr-agent,
#     /sbin/init wrapped (the operator's step, README "For Kata operators").
#  3. The kernel: Debian's cloud kernel, whose modules the initrd carries
#     (the few Kata's kernel has built in, which the bed's kernel-init loads,
#     and those criu needs, which kata-cr's overlay loads), and the kernel
#     command line (OUT_DIR/cmdline).
#
# Writes OUT_DIR/{vmlinuz,initrd.img,cmdline,kernel.config,kernel-version}.
# Debian packages are cached in $KATA_CR_CACHE/kata-guest/debs-N and fetched
# from sid with a private apt state.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build-guest.sh OUT_DIR KATA_DIR [BINS_DIR]}
kata=${2:?usage: build-guest.sh OUT_DIR KATA_DIR [BINS_DIR]}
bins=${3:-$repo/target/x86_64-unknown-linux-gnu/release}
CACHE=${KATA_CR_CACHE:-/var/cache/kata-cr}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${DEBIAN_SUITE:-sid}
# The distro base of the initrd, and the agent's libraries (libc, libm,
# libgcc_s). kmod opens liblzma and libzstd at run time (the kernel's
# modules are xz-compressed).
BASE_PKGS="busybox-static kmod libc6 libgcc-s1 liblzma5 libzstd1"

die() { echo "build-guest (kata): $*" >&2; exit 1; }
[ -x "$kata/kata-agent" ] || die "no kata-agent in $kata"
[ -x "$bins/kata-cr-agent" ] || die "no kata-cr-agent in $bins: make build"

apt_opts() { # apt_opts STATE_DIR: a private apt state on DEBIAN_SUITE
	local st=$1
	mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$st/etc/preferences.d"
	echo "deb [trusted=yes] $DEBIAN_MIRROR $DEBIAN_SUITE main" >"$st/etc/sources.list"
	APT=(-o "Dir::Etc::SourceList=$st/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::Etc::PreferencesParts=$st/etc/preferences.d" -o "Dir::State::Lists=$st/lists"
		-o "Dir::Cache=$st/cache" -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1"
		-o "APT::Sandbox::User=root")
}

# ---- Debian packages (cached; the suffix changes with what is fetched)
debs=$CACHE/kata-guest/debs-2
criu_debs=$debs/criu
mkdir -p "$CACHE/kata-guest"
exec 9>"$CACHE/kata-guest/debs.lock"
flock -x 9
if [ ! -e "$debs/complete" ]; then
	rm -rf "$debs"
	mkdir -p "$debs/base" "$criu_debs"
	st=$(mktemp -d)
	trap 'rm -rf "$st"' EXIT
	apt_opts "$st"
	apt-get "${APT[@]}" -qq update
	kimg=$(apt-cache "${APT[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$kimg" ] || die "no versioned kernel behind linux-image-cloud-amd64 in $DEBIAN_SUITE"
	kver=${kimg#linux-image-}
	pkgs=$(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances $BASE_PKGS |
		grep -E '^(busybox-static|kmod|lib[a-z0-9.+-]+|zlib1g|gcc-[0-9]+-base)$' | sort -u)
	(cd "$debs/base" && apt-get "${APT[@]}" -qq download $pkgs)
	# the kernel; linux-headers for its .config (what criu's kernel options
	# are held against)
	(cd "$debs" && apt-get "${APT[@]}" -qq download "linux-binary-$kver" "linux-modules-$kver" "linux-headers-$kver")
	# criu and its libraries, for the overlay (as its --debs)
	pkgs=$(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances criu tar |
		grep -E '^(criu|tar|lib[a-z0-9.+-]+|gcc-[0-9]+-base)$' | sort -u)
	(cd "$criu_debs" && apt-get "${APT[@]}" -qq download $pkgs)
	echo "$kver" >"$debs/kernel-version"
	touch "$debs/complete"
	rm -rf "$st"
	trap - EXIT
fi
flock -u 9
kver=$(cat "$debs/kernel-version")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root kx=$work/kernel
mkdir -p "$root"/usr/{bin,sbin,lib,lib64} "$kx"
ln -s usr/bin "$root/bin"; ln -s usr/sbin "$root/sbin"; ln -s usr/lib "$root/lib"; ln -s usr/lib64 "$root/lib64"

# ---- 1. the Kata initrd
for d in "$debs"/base/*.deb; do dpkg-deb -x "$d" "$root"; done
rm -rf "$root"/usr/share/{doc,man,lintian,locale,info} "$root/etc/init.d"
for a in $("$root/usr/bin/busybox" --list); do
	[ -e "$root/usr/bin/$a" ] || [ -e "$root/usr/sbin/$a" ] || ln -s busybox "$root/usr/bin/$a"
done
install -m 0755 "$kata/kata-agent" "$root/usr/bin/kata-agent"
ln -sfn /usr/bin/kata-agent "$root/usr/sbin/init" # rootfs.sh, AGENT_INIT=yes
ln -sfn /sbin/init "$root/init"                   # initrd_builder.sh
mkdir -p "$root"/{proc,sys,dev,run,tmp,etc,root}
chmod 1777 "$root/tmp"
# the kernel gives init its console from the initrd's /dev/console
mknod -m 0600 "$root/dev/console" c 5 1
mknod -m 0666 "$root/dev/null" c 1 3
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "kata-cr-bed-guest" >"$root/etc/hostname"
chroot "$root" /usr/bin/kata-agent --version >/dev/null 2>&1 ||
	die "kata-agent does not run in the guest root: $(chroot "$root" /usr/bin/kata-agent --version 2>&1 | head -3)"
agent_version=$(chroot "$root" /usr/bin/kata-agent --version 2>&1 | head -1)

# ---- 3 (before 2: the overlay's module list decides what the initrd keeps).
for d in "$debs"/linux-*.deb; do dpkg-deb -x "$d" "$kx"; done
moddir=usr/lib/modules/$kver
[ -f "$kx/$moddir/vmlinuz" ] || die "no vmlinuz in linux-binary-$kver"
cfg=$(find "$kx/usr/src" -path "*$kver*" -name .config | head -1)
[ -n "$cfg" ] || die "linux-headers-$kver has no .config"
mkdir -p "$root/$moddir"
cp -a "$kx/$moddir/kernel" "$root/$moddir/"
# Debian ships no modules.builtin: what the lists name and the kernel has
# built in (=y) is written there, so that modprobe of it succeeds.
grep -hvE '^[[:space:]]*(#|$)' "$here/guest/builtins" "$repo/guest-overlay/modules" | while read -r m opt _; do
	if grep -qx "$opt=y" "$cfg"; then echo "kernel/builtin/$m.ko"; fi
done >"$root/$moddir/modules.builtin"
chroot "$root" depmod -a "$kver" 2>"$work/depmod.err" || die "depmod failed in the guest root: $(tail -3 "$work/depmod.err")"
keep=$work/keep
: >"$keep"
grep -hvE '^[[:space:]]*(#|$)' "$here/guest/builtins" "$repo/guest-overlay/modules" | while read -r m opt _; do
	chroot "$root" modprobe -S "$kver" --show-depends "$m" >"$work/dep" 2>&1 ||
		die "kernel $kver has neither a module $m nor $opt=y: $(cat "$work/dep")"
	awk -v k="/modules/$kver/" '$1 == "insmod" {i = index($2, k); print substr($2, i + length(k))}' "$work/dep" >>"$keep"
done
(cd "$root/$moddir" && find kernel -type f) | grep -vxF -f "$keep" | (cd "$root/$moddir" && xargs -r rm -f)
find "$root/$moddir/kernel" -depth -type d -empty -delete
chroot "$root" depmod -a "$kver"
mkdir -p "$root/kata-cr-bed"
install -m 0755 "$here/guest/kernel-init" "$root/kata-cr-bed/kernel-init"
install -m 0644 "$here/guest/builtins" "$root/kata-cr-bed/builtins"

mkdir -p "$out"
(cd "$root" && find . | cpio -H newc -o --quiet | gzip -1) >"$work/initrd.img"

# ---- 2. what an operator does to a Kata initrd
"$repo/guest-overlay/build-guest.sh" --bins "$bins" --debs "$criu_debs" --initrd "$work/initrd.img"

mv "$work/initrd.img" "$out/initrd.img"
cp "$kx/$moddir/vmlinuz" "$out/vmlinuz"
cp "$cfg" "$out/kernel.config"
echo "$kver" >"$out/kernel-version"
echo "$agent_version" >"$out/agent-version"
# cgroup v2 as Kata's own kernel parameters ask for it; the bed's
# kernel-init first (see integration/kata/guest/kernel-init)
echo "console=ttyS0 panic=-1 quiet systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all rdinit=/kata-cr-bed/kernel-init" >"$out/cmdline"
echo "build-guest (kata): kernel $kver, $agent_version, initrd $(du -h "$out/initrd.img" | cut -f1) in $out"
