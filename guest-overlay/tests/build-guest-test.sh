#!/bin/bash
# build-guest.sh on directories and an initrd, with fake .debs and binaries
# (no network): layout, the criu wrapper, the systemd wiring, the initrd
# /sbin/init wrapper, a guest image file, and the criu version gate. The image
# file case needs root (losetup, mount) and the initrd case cpio (deps.sh):
# without them the test fails, saying so, rather than skipping them (make test
# runs as root after deps.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdeb() { # name version then path=content pairs
	local name=$1 ver=$2 d="$t/pkg-$1"; shift 2
	mkdir -p "$d/DEBIAN"
	printf 'Package: %s\nVersion: %s\nArchitecture: amd64\nMaintainer: t <t@t>\nDescription: fake\n' "$name" "$ver" >"$d/DEBIAN/control"
	for pc in "$@"; do
		mkdir -p "$d/$(dirname "${pc%%=*}")"
		printf '%b' "${pc#*=}" >"$d/${pc%%=*}"
		chmod 0755 "$d/${pc%%=*}"
	done
	dpkg-deb --root-owner-group -b "$d" "$t/debs/${name}_${ver}_amd64.deb" >/dev/null
	rm -rf "$d"
}
mkdir -p "$t/debs" "$t/bins"
mkdeb criu 4.2.1-1 'usr/sbin/criu=#!/bin/sh\necho "Version: 4.2.1 args=$*"\n'
mkdeb libc6 2.41-1 'usr/lib64/ld-linux-x86-64.so.2=#!/bin/sh\n[ "$1" = --library-path ] || exit 9\necho "LP=$2"\nshift 2\nexec "$@"\n' \
	'usr/lib/x86_64-linux-gnu/libc.so.6=x'
mkdeb libnl-3-200 3.7-1 'usr/lib/x86_64-linux-gnu/libnl-3.so.200=x'
mkdeb tar 1.35-1 'usr/bin/tar=#!/bin/sh\necho "gnu tar $*"\n'
printf '#!/bin/sh\necho agent\n' >"$t/bins/kata-cr-agent"
printf '#!/bin/sh\necho init\n' >"$t/bins/kata-cr-init"
chmod +x "$t/bins/"*

# 1. image-mode rootfs directory
root="$t/rootfs"
mkdir -p "$root/sbin" "$root/usr/bin"
"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --rootfs "$root" >/dev/null
for f in usr/local/bin/kata-cr-agent usr/local/bin/kata-cr-init usr/local/sbin/criu \
	etc/systemd/system/kata-cr-agent.service opt/kata-cr/criu/usr/sbin/criu; do
	[ -x "$root/$f" ] || [ -f "$root/$f" ] || fail "$f missing"
done
[ "$(readlink "$root/etc/systemd/system/kata-containers.target.wants/kata-cr-agent.service")" = ../kata-cr-agent.service ] ||
	fail "unit not wanted by kata-containers.target"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/kata-cr-agent.service" ] || fail "wanted by multi-user.target"
grep -q 'vsock://-1:1029' "$root/etc/systemd/system/kata-cr-agent.service" || fail "unit does not listen on vsock 1029"
# criu finds GNU tar (tmpfs contents) through its own wrapper first
grep -q 'PATH="$P/wrap:$PATH"' "$root/usr/local/sbin/criu" || fail "criu wrapper does not put GNU tar first"
out=$(KATA_CR_CRIU_PREFIX="$root/opt/kata-cr/criu" "$root/opt/kata-cr/criu/wrap/tar" --create)
echo "$out" | grep -q "gnu tar --create" || fail "tar wrapper: $out"
out=$(KATA_CR_CRIU_PREFIX="$root/opt/kata-cr/criu" "$root/usr/local/sbin/criu" --version)
echo "$out" | grep -q "Version: 4.2.1 args=--version" || fail "criu wrapper: $out"
echo "$out" | grep -q "LP=$root/opt/kata-cr/criu/usr/lib/x86_64-linux-gnu" || fail "criu library path: $out"
[ ! -e "$root/sbin/init" ] || fail "image mode must not touch /sbin/init"
# criu's kernel modules: listed for the initrd wrapper and systemd alike
cmp -s "$here/modules" "$root/etc/kata-cr/modules" || fail "etc/kata-cr/modules is not guest-overlay/modules"
for m in nfnetlink nf_tables tun veth unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag af_packet_diag; do
	grep -qE "^$m CONFIG_[A-Z0-9_]+$" "$here/modules" || fail "guest-overlay/modules lacks '$m CONFIG_...'"
	grep -qx "$m" "$root/etc/modules-load.d/kata-cr.conf" || fail "modules-load.d/kata-cr.conf lacks $m"
done
# every module's option is in the kernel fragment an operator gives Kata's kernel build
awk '!/^[[:space:]]*(#|$)/ {print $2}' "$here/modules" | while read -r opt; do
	grep -qx "$opt=y" "$here/kernel/kata-cr.conf" || fail "$opt (guest-overlay/modules) is not =y in kernel/kata-cr.conf"
done
grep -q 'systemd-modules-load.service' "$root/etc/systemd/system/kata-cr-agent.service" ||
	fail "the unit does not wait for the modules"
# idempotent
"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --rootfs "$root" >/dev/null

# 2. a rootfs prepared for an initrd: the agent is /sbin/init
root2="$t/rootfs-initrd"
mkdir -p "$root2/sbin" "$root2/usr/bin"
printf '#!/bin/sh\necho kata-agent "$@"\n' >"$root2/usr/bin/kata-agent"
chmod +x "$root2/usr/bin/kata-agent"
ln -s /usr/bin/kata-agent "$root2/sbin/init"
ROOTFS_DIR="$root2" "$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" >/dev/null
cmp -s "$root2/sbin/init" "$here/initrd/kata-cr-init-wrapper" || fail "/sbin/init not wrapped"
[ "$(cat "$root2/etc/kata-cr/real-init")" = /usr/bin/kata-agent ] || fail "real init not recorded"

# 3. an initrd file, wrapped in place
command -v cpio >/dev/null || fail "the initrd case needs cpio (integration/deps.sh installs it)"
{
	r3="$t/initrd-root"
	mkdir -p "$r3/sbin" "$r3/usr/bin"
	cp "$root2/usr/bin/kata-agent" "$r3/usr/bin/kata-agent"
	ln -s /usr/bin/kata-agent "$r3/sbin/init"
	(cd "$r3" && find . | cpio -H newc -o --quiet | gzip) >"$t/kata.initrd"
	"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --initrd "$t/kata.initrd" >/dev/null
	mkdir "$t/x" && (cd "$t/x" && gzip -dc "$t/kata.initrd" | cpio -idm --quiet)
	cmp -s "$t/x/sbin/init" "$here/initrd/kata-cr-init-wrapper" || fail "initrd /sbin/init not wrapped"
	[ -x "$t/x/usr/local/sbin/criu" ] || fail "initrd lacks criu"
}

# 3b. a Kata guest image file (raw, msdos label, ext4 rootfs on partition
# 1), as image_builder.sh makes it: root only (losetup, mount)
[ "$(id -u)" = 0 ] || fail "the guest image case needs root (losetup, mount): run it as root"
command -v mkfs.ext4 >/dev/null || fail "the guest image case needs mkfs.ext4 (e2fsprogs)"
losetup -f >/dev/null 2>&1 || fail "the guest image case needs a free loop device"
{
	img="$t/kata.img"
	truncate -s 64M "$img"
	python3 - "$img" <<'EOF'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    start, size = 2048, 64 * 2048 - 2048
    f.seek(446)
    f.write(struct.pack("<B3sB3sII", 0x80, b"\0\0\0", 0x83, b"\0\0\0", start, size))
    f.seek(510)
    f.write(b"\x55\xaa")
EOF
	l=$(losetup --find --show --offset $((2048 * 512)) "$img")
	mkfs.ext4 -q "$l"
	losetup -d "$l"
	"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --image "$img" >/dev/null
	l=$(losetup --find --show --offset $((2048 * 512)) "$img")
	mkdir -p "$t/imgmnt" && mount -o ro "$l" "$t/imgmnt"
	ok=1
	for f in usr/local/bin/kata-cr-agent usr/local/sbin/criu opt/kata-cr/criu/wrap/tar \
		etc/systemd/system/kata-containers.target.wants/kata-cr-agent.service; do
		[ -e "$t/imgmnt/$f" ] || { ok=0; echo "image lacks /$f" >&2; }
	done
	umount "$t/imgmnt"
	losetup -d "$l"
	[ "$ok" = 1 ] || fail "guest image not completed"
	# not an image: a clear refusal
	head -c 4096 /dev/zero >"$t/zero.img"
	"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --image "$t/zero.img" 2>"$t/err" && fail "a zero file accepted as image"
	grep -q "no MBR partition table" "$t/err" || fail "image error: $(cat "$t/err")"
}

# 4. criu older than 4.1 is refused
rm "$t/debs"/criu_*.deb
mkdeb criu 4.0-1 'usr/sbin/criu=#!/bin/sh\n'
if "$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --rootfs "$t/rootfs3" 2>"$t/err"; then
	fail "criu 4.0 accepted"
fi
mkdir -p "$t/rootfs3"
"$here/build-guest.sh" --bins "$t/bins" --debs "$t/debs" --rootfs "$t/rootfs3" 2>"$t/err" && fail "criu 4.0 accepted"
grep -q "needs criu 4.1" "$t/err" || fail "version error: $(cat "$t/err")"
# 5. optional: real criu .debs (CRIU_DEBS=DIR, e.g. from a previous
# make guest-image): criu must run through its bundled loader here.
if [ -n "${CRIU_DEBS:-}" ]; then
	mkdir -p "$t/real"
	"$here/build-guest.sh" --bins "$t/bins" --debs "$CRIU_DEBS" --rootfs "$t/real" >/dev/null
	v=$(KATA_CR_CRIU_PREFIX="$t/real/opt/kata-cr/criu" "$t/real/usr/local/sbin/criu" --version)
	echo "$v" | grep -q '^Version: 4\.' || fail "real criu: $v"
	echo "real criu: $v"
fi
echo "build-guest tests: ok"
