#!/usr/bin/env bash
# Builds the test guest of the VM proof (integration/vm/run): a Debian cloud
# kernel and an initrd that is what a Kata initrd guest is to kata-cr: an
# init standing in for the Kata agent (integration/vm/guest/kata-agent-standin),
# runc to run containers, and then guest-overlay/build-guest.sh --initrd
# adds criu and kata-cr-agent exactly as an operator would to a Kata initrd.
#
#   build-guest-vm.sh OUT_DIR [BINS_DIR]
#
# Writes OUT_DIR/vmlinuz, its OUT_DIR/kernel.config, OUT_DIR/initrd.img and OUT_DIR/image/ (a busybox
# rootfs for the test containers). The Debian packages are cached in
# $KATA_CR_CACHE/vm/debs and fetched from sid with a private apt state.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build-guest-vm.sh OUT_DIR [BINS_DIR]}
bins=${2:-$repo/target/x86_64-unknown-linux-gnu/release}
CACHE=${KATA_CR_CACHE:-/var/cache/kata-cr}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SUITE=${DEBIAN_SUITE:-sid}
# What the guest runs besides kata-cr: runc for containers, socat for the
# test's control channel (vsock port 1030), busybox for everything else.
ROOT_PKGS="busybox-static runc socat"
# Loaded in this order by the stand-in (no modprobe in the guest): the vsock
# transport and the sock_diag modules criu reads sockets through.
MODULES="vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag af_packet_diag"

die() { echo "build-guest-vm: $*" >&2; exit 1; }
[ -x "$bins/kata-cr-agent" ] && [ -x "$bins/kata-cr-init" ] || die "no kata-cr-agent/kata-cr-init in $bins: make build"

# the suffix changes with the set of packages fetched
debs=$CACHE/vm/debs-2
mkdir -p "$debs"
exec 9>"$CACHE/vm/debs.lock"
flock -x 9
if [ ! -e "$debs/complete" ]; then
	st=$(mktemp -d)
	trap 'rm -rf "$st"' EXIT
	mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$st/etc/preferences.d"
	echo "deb [trusted=yes] $DEBIAN_MIRROR $DEBIAN_SUITE main" >"$st/etc/sources.list"
	opts=(-o "Dir::Etc::SourceList=$st/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::Etc::PreferencesParts=$st/etc/preferences.d" -o "Dir::State::Lists=$st/lists"
		-o "Dir::Cache=$st/cache" -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1"
		-o "APT::Sandbox::User=root")
	apt-get "${opts[@]}" -qq update
	# The kernel: linux-image-cloud-amd64 names the versioned image, whose
	# vmlinuz and modules are in linux-binary-V and linux-modules-V.
	kimg=$(apt-cache "${opts[@]}" depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	[ -n "$kimg" ] || die "no versioned kernel behind linux-image-cloud-amd64 in $DEBIAN_SUITE"
	kver=${kimg#linux-image-}
	# Only packages that ship libraries from the closure (the rest is
	# maintainer-script machinery a bare initrd never runs).
	pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances $ROOT_PKGS |
		grep -E '^(busybox-static|runc|socat|lib[a-z0-9.+-]+|zlib1g|gcc-[0-9]+-base)$' | sort -u)
	rm -f "$debs"/*.deb
	# linux-headers-V: the kernel's .config, to hold guest-overlay's kernel
	# fragment against (proof.sh).
	(cd "$debs" && apt-get "${opts[@]}" -qq download $pkgs "linux-binary-$kver" "linux-modules-$kver" "linux-headers-$kver")
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
for d in "$debs"/*.deb; do
	case "$(basename "$d")" in
	linux-*) dpkg-deb -x "$d" "$kx" ;;
	*) dpkg-deb -x "$d" "$root" ;;
	esac
done
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/lintian"
for a in $("$root/usr/bin/busybox" --list); do
	[ -e "$root/usr/bin/$a" ] || [ -e "$root/usr/sbin/$a" ] || ln -s busybox "$root/usr/bin/$a"
done
mkdir -p "$root"/{proc,sys,dev,run,tmp,etc,newroot,root} "$root/usr/lib/kata-cr-vm/modules"
moddir=$kx/usr/lib/modules/$kver
[ -f "$moddir/vmlinuz" ] || die "no vmlinuz in linux-binary-$kver"
for m in $MODULES; do
	f=$(find "$moddir" -name "$m.ko.xz" -o -name "$m.ko" | head -1)
	[ -n "$f" ] || die "kernel $kver has no module $m"
	case "$f" in *.xz) xz -dc "$f" ;; *) cat "$f" ;; esac >"$root/usr/lib/kata-cr-vm/modules/$m.ko"
	echo "$m" >>"$root/usr/lib/kata-cr-vm/modules/order"
done
install -m 0755 "$here/guest/init" "$root/init"
install -m 0755 "$here/guest/kata-agent-standin" "$root/usr/sbin/init"
install -m 0644 "$here/guest/inittab" "$root/etc/inittab"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "kata-cr-vm" >"$root/etc/hostname"

# The binaries must run in the guest as they are: a missing library shows
# here, not as a silent guest.
for b in usr/sbin/runc usr/bin/socat1; do
	chroot "$root" "/$b" --version >/dev/null 2>&1 || chroot "$root" "/$b" -V >/dev/null 2>&1 ||
		die "/$b does not run in the guest root: $(chroot "$root" "/$b" --version 2>&1 | head -2)"
done

mkdir -p "$out"
(cd "$root" && find . | cpio -H newc -o --quiet | gzip -1) >"$work/initrd.img"
# What an operator does to a Kata initrd.
"$repo/guest-overlay/build-guest.sh" --bins "$bins" --initrd "$work/initrd.img"
mv "$work/initrd.img" "$out/initrd.img"
cp "$moddir/vmlinuz" "$out/vmlinuz"
cfg=$(find "$kx/usr/src" -path "*$kver*" -name .config | head -1)
[ -n "$cfg" ] || die "linux-headers-$kver has no .config"
cp "$cfg" "$out/kernel.config"

# The test containers' image: busybox.
img=$out/image
rm -rf "$img"
mkdir -p "$img"/{bin,etc,tmp,proc,sys,dev,root}
cp "$root/usr/bin/busybox" "$img/bin/busybox"
for a in $("$img/bin/busybox" --list); do [ -e "$img/bin/$a" ] || ln -s busybox "$img/bin/$a"; done
echo "root:x:0:0:root:/root:/bin/sh" >"$img/etc/passwd"
chmod 1777 "$img/tmp"
echo "build-guest-vm: kernel $kver, initrd $(du -h "$out/initrd.img" | cut -f1) in $out"
