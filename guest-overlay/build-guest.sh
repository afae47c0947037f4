#!/bin/bash
# Turn a stock Kata guest into a C/R-capable one: criu (4.1+, with every
# library it needs) and kata-cr-agent, started on vsock port 1029.
#
#   build-guest.sh [--bins DIR] [--debs DIR] --rootfs DIR
#   build-guest.sh [--bins DIR] [--debs DIR] --image FILE
#   build-guest.sh [--bins DIR] [--debs DIR] --initrd FILE
#
# --rootfs DIR   a guest root directory: Kata's ROOTFS_DIR between rootfs.sh
#                and image_builder.sh / initrd_builder.sh (ROOTFS_DIR in the
#                environment works too).
# --image FILE   an existing Kata guest image (raw, msdos label, rootfs on
#                partition 1): loop-mount p1, add the files, unmount. Root.
# --initrd FILE  an existing Kata initrd (gzip'd newc cpio): unpacked, the
#                files added, /sbin/init wrapped, repacked in place.
# --bins DIR     where kata-cr-agent is (static build; default
#                target/x86_64-unknown-linux-gnu/release).
# --debs DIR     .deb files of criu and its libraries. Default: downloaded
#                from Debian sid with a private apt state (nothing of the
#                host's apt configuration is touched).
#
# criu goes to /opt/kata-cr/criu with its own glibc and loader (the guest's
# distro may be older than the one criu was built for); /usr/local/sbin/criu
# runs it through that loader. Image mode: systemd starts
# kata-cr-agent.service, wanted by kata-containers.target. Initrd mode (the
# Kata agent is /sbin/init): /sbin/init becomes kata-cr-init-wrapper, which
# also moves the root off the initramfs (criu restore needs pivot_root).
# Both load the kernel modules criu needs (modules) where the kernel has them
# as modules.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bins="$repo/target/x86_64-unknown-linux-gnu/release"
debs=""
rootfs="${ROOTFS_DIR:-}"
image=""
initrd=""
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SUITE="${DEBIAN_SUITE:-sid}"
PREFIX=/opt/kata-cr/criu

die() { echo "build-guest: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--rootfs) rootfs="$2"; shift 2 ;;
	--image) image="$2"; shift 2 ;;
	--initrd) initrd="$2"; shift 2 ;;
	--bins) bins="$2"; shift 2 ;;
	--debs) debs="$2"; shift 2 ;;
	-h|--help) sed -n '2,28p' "$0"; exit 0 ;;
	*) die "unknown argument $1 (see --help)" ;;
	esac
done

n=0
for x in "$rootfs" "$image" "$initrd"; do [ -n "$x" ] && n=$((n + 1)); done
[ "$n" = 1 ] || die "give exactly one of --rootfs DIR, --image FILE, --initrd FILE"
[ -x "$bins/kata-cr-agent" ] || die "$bins/kata-cr-agent missing: make build (or --bins DIR)"

# criu and its library closure from Debian, as .deb files in $1, with GNU
# tar: criu runs `tar` to dump and restore tmpfs contents (a container's
# /dev/shm), and a busybox tar lacks the options it uses. Only
# packages that ship libraries are kept (criu's Depends reach essential
# packages such as debconf through libc6's maintainer scripts otherwise).
fetch_debs() {
	local out="$1" st
	st=$(mktemp -d)
	mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$st/etc/preferences.d"
	echo "deb [trusted=yes] $DEBIAN_MIRROR $DEBIAN_SUITE main" >"$st/etc/sources.list"
	local opts=(-o "Dir::Etc::SourceList=$st/etc/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::Etc::PreferencesParts=$st/etc/preferences.d" -o "Dir::State::Lists=$st/lists"
		-o "Dir::Cache=$st/cache" -o "Dir::State::status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
	apt-get "${opts[@]}" -qq update
	local pkgs
	pkgs=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances criu tar |
		grep -E '^(criu|tar|lib[a-z0-9.+-]+|gcc-[0-9]+-base)$' | sort -u)
	(cd "$out" && apt-get "${opts[@]}" -qq download $pkgs)
	rm -rf "$st"
}

# Everything into the root directory $1.
install_into() {
	local root="$1" stage loader libpath
	[ -d "$root" ] || die "$root is not a directory"
	if [ -z "$debs" ]; then
		debs=$(mktemp -d)
		fetch_debs "$debs"
	fi
	ls "$debs"/criu_*.deb >/dev/null 2>&1 || die "no criu_*.deb in $debs"

	stage=$(mktemp -d)
	for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$stage"; done
	local v
	v=$(dpkg-deb -f "$(ls "$debs"/criu_*.deb | head -1)" Version)
	case "$v" in
	[0-3].*|4.0*) die "criu $v from $debs: kata-cr-agent needs criu 4.1 or later" ;;
	esac
	[ -x "$stage/usr/sbin/criu" ] || die "criu_*.deb has no usr/sbin/criu"

	# The loader and library directories, relative to the prefix.
	loader=$(cd "$stage" && find . -name 'ld-linux*.so*' \( -type f -o -type l \) | sort | head -1)
	[ -n "$loader" ] || die "no dynamic loader (ld-linux*.so*) in the .debs: add libc6"
	libpath=$(cd "$stage" && find . -name '*.so*' \( -type f -o -type l \) -printf '%h\n' | sort -u |
		sed "s|^\.|$PREFIX|" | paste -sd: -)

	rm -rf "${root:?}$PREFIX"
	mkdir -p "$root$PREFIX" "$root/usr/local/sbin" "$root/usr/local/bin" "$root/etc/kata-cr"
	cp -a "$stage/." "$root$PREFIX/"
	rm -rf "$stage" "$root$PREFIX/usr/share" # docs, man pages, lintian: nothing criu reads
	echo "$v" >"$root$PREFIX/VERSION"
	cat >"$root/usr/local/sbin/criu" <<EOF
#!/bin/sh
# criu $v with its own libraries (installed by kata-cr's build-guest.sh).
P=\${KATA_CR_CRIU_PREFIX:-$PREFIX}
LP=\$(echo "$libpath" | sed "s|$PREFIX|\$P|g")
# the GNU tar criu runs for tmpfs contents comes first
PATH="\$P/wrap:\$PATH"
export PATH
exec "\$P/${loader#./}" --library-path "\$LP" "\$P/usr/sbin/criu" "\$@"
EOF
	chmod 0755 "$root/usr/local/sbin/criu"
	mkdir -p "$root$PREFIX/wrap"
	if [ -x "$root$PREFIX/usr/bin/tar" ]; then
		cat >"$root$PREFIX/wrap/tar" <<EOF
#!/bin/sh
# GNU tar for criu, with criu's libraries.
P=\${KATA_CR_CRIU_PREFIX:-$PREFIX}
LP=\$(echo "$libpath" | sed "s|$PREFIX|\$P|g")
exec "\$P/${loader#./}" --library-path "\$LP" "\$P/usr/bin/tar" "\$@"
EOF
		chmod 0755 "$root$PREFIX/wrap/tar"
	else
		echo "build-guest: warning: no tar_*.deb among the .debs: criu cannot dump a tmpfs (/dev/shm) unless the guest has GNU tar on PATH" >&2
	fi

	install -m 0755 "$bins/kata-cr-agent" "$root/usr/local/bin/kata-cr-agent"
	[ -x "$bins/kata-cr-init" ] && install -m 0755 "$bins/kata-cr-init" "$root/usr/local/bin/kata-cr-init"

	# criu's kernel modules, for a guest kernel that has them as modules:
	# the initrd wrapper modprobes each, systemd's modules-load.d does the
	# same in image mode (a Kata kernel has them built in: kernel/*.conf).
	mkdir -p "$root/etc/modules-load.d"
	install -m 0644 "$here/modules" "$root/etc/kata-cr/modules"
	{
		echo "# criu's kernel modules (kata-cr guest-overlay/modules)"
		awk '!/^[[:space:]]*(#|$)/ {print $1}' "$here/modules"
	} >"$root/etc/modules-load.d/kata-cr.conf"
	chmod 0644 "$root/etc/modules-load.d/kata-cr.conf"

	# Image mode: systemd, wanted by kata-containers.target.
	mkdir -p "$root/etc/systemd/system/kata-containers.target.wants"
	install -m 0644 "$here/systemd/kata-cr-agent.service" "$root/etc/systemd/system/kata-cr-agent.service"
	ln -sfn ../kata-cr-agent.service "$root/etc/systemd/system/kata-containers.target.wants/kata-cr-agent.service"
}

# Initrd mode: the Kata agent is /sbin/init; put the wrapper in front of it.
wrap_init() {
	local root="$1" real
	if [ -e "$root/sbin/init" ] || [ -L "$root/sbin/init" ]; then
		if cmp -s "$root/sbin/init" "$here/initrd/kata-cr-init-wrapper"; then
			return 0 # already wrapped
		fi
		if [ -L "$root/sbin/init" ]; then
			real=$(readlink "$root/sbin/init")
		else
			mv "$root/sbin/init" "$root/sbin/init.kata-agent"
			real=/sbin/init.kata-agent
		fi
	else
		real=/usr/bin/kata-agent
	fi
	echo "$real" >"$root/etc/kata-cr/real-init"
	rm -f "$root/sbin/init"
	install -D -m 0755 "$here/initrd/kata-cr-init-wrapper" "$root/sbin/init"
}

if [ -n "$rootfs" ]; then
	install_into "$rootfs"
	# A rootfs prepared for an initrd (rootfs.sh with AGENT_INIT=yes) has
	# the agent as /sbin/init.
	if [ -L "$rootfs/sbin/init" ] && [[ "$(readlink "$rootfs/sbin/init")" == *kata-agent* ]]; then
		wrap_init "$rootfs"
	fi
elif [ -n "$image" ]; then
	[ "$(id -u)" = 0 ] || die "--image needs root (losetup, mount)"
	[ -f "$image" ] || die "$image: no such image file"
	# Partition 1 by its offset in the MBR (Kata's image_builder.sh writes an
	# msdos label): losetup -P needs partition scanning and a udev that
	# makes the p1 node, which containers and build hosts often lack.
	[ "$(od -An -t x1 -j 510 -N 2 "$image" | tr -d ' \n')" = 55aa ] ||
		die "$image: no MBR partition table (want a Kata guest image: raw, rootfs on partition 1)"
	[ "$(od -An -t x1 -j 450 -N 1 "$image" | tr -d ' \n')" != ee ] ||
		die "$image: a GPT image; only Kata's msdos-labelled images are handled"
	start=$(od -An -t u4 -j 454 -N 4 "$image" | tr -d ' \n')
	[ "${start:-0}" -gt 0 ] || die "$image: partition 1 is empty"
	loop=$(losetup --find --show --offset $((start * 512)) "$image")
	mnt=$(mktemp -d)
	trap 'umount "$mnt" 2>/dev/null || true; losetup -d "$loop" 2>/dev/null || true; rmdir "$mnt"' EXIT
	mount "$loop" "$mnt" || die "$image: cannot mount partition 1 (at sector $start)"
	install_into "$mnt"
	echo "build-guest: free space left in the image:" && df -h "$mnt" | tail -1
elif [ -n "$initrd" ]; then
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	(cd "$work" && gzip -dc "$initrd" | cpio -idm --quiet)
	install_into "$work"
	wrap_init "$work"
	(cd "$work" && find . | cpio -H newc -o --quiet | gzip -9) >"$initrd.tmp"
	mv "$initrd.tmp" "$initrd"
fi
echo "build-guest: kata-cr-agent and criu $(cat "${rootfs:-${work:-$mnt}}$PREFIX/VERSION" 2>/dev/null || true) installed"
