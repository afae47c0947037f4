#!/usr/bin/env bash
# The Kata side of kata-cr in a real VM (issue 5's proof), run by
#   integration/vm/run -- integration/vm/proof.sh
# The proxy's Kata backend (containerd-shim-kata-cr-v2 guest/doctor: the
# management socket's /agent-url, hybrid vsock CONNECT 1029, the guest rootfs
# path /run/kata-containers/<id>/rootfs, staging through the rootfs's
# upperdir) against kata-cr-agent and criu inside a qemu guest built by
# build-guest-vm.sh (guest-overlay/build-guest.sh --initrd on it). The
# containers are runc containers in the guest, with the bundles the proxy's
# own rewrite produces, on overlay rootfses the host shares over virtio-fs,
# as Kata shares them. Prints one line per case and `vm: N passed, N failed`.
#
# Every check decides its case: each case runs in its own subshell; `fail`
# records its message and ends the case at once, and a case fails if it
# exits non-zero or if any check recorded a failure (also one inside a
# `$(...)`, which ends only that subshell).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
BINS=${KATA_CR_BINS:-$repo/target/x86_64-unknown-linux-gnu/release}
SHIM=$BINS/containerd-shim-kata-cr-v2
D=${KATA_CR_VM_DIR:?run me through integration/vm/run}
SB=$KATA_CR_VM_SANDBOX
IMAGE=$KATA_CR_VM_GUEST/image
INIT=/usr/local/bin/kata-cr-init # where build-guest.sh put it in the guest
COUNTER='i=0; [ -f /tmp/c ] && i=$(cat /tmp/c); trap "exit 42" TERM; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; echo $i > /dev/shm/c; sleep 0.2; done'

passed=0 failed=0
FAILED=$D/case.failed # a case's failure record
note() { echo "     $*"; }
fail() { echo "FAIL: $*" | tee -a "$FAILED" >&2; exit 1; }
case_() { # case_ NAME FN
	local out rc t0=$SECONDS
	rm -f "$FAILED"
	out=$("$2" 2>&1)
	rc=$?
	[ -s "$FAILED" ] && [ "$rc" = 0 ] && rc=1
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "ok   $1 ($((SECONDS - t0)) s)"
	else
		failed=$((failed + 1))
		echo "FAIL $1 ($((SECONDS - t0)) s)"
	fi
	[ -n "$out" ] && sed 's/^/     /' <<<"$out"
	return 0
}
in_guest() { $KATA_CR_VM_SH; } # stdin: a script run in the guest

# new_container ID [--restore]: an overlay rootfs over the busybox image, its
# upperdir on this host, shared into the guest; the bundle rewritten by the
# proxy; started by runc in the guest with pipes for stdio (as the Kata
# agent gives containers). --restore: kata-cr-init waits in restore mode.
new_container() {
	local id=$1 mode=${2:-}
	mkdir -p "$D/upper/$id" "$D/work/$id" "$D/shared/$id/rootfs"
	mount -t overlay overlay -o "lowerdir=$IMAGE,upperdir=$D/upper/$id,workdir=$D/work/$id" \
		"$D/shared/$id/rootfs" || return 1
	python3 "$here/bundle.py" "$D/shared/$id" "$id" "$COUNTER" || return 1
	"$SHIM" rewrite-bundle $mode --init "$INIT" "$D/shared/$id" >/dev/null || return 1
	in_guest <<-EOF
		set -e
		mkdir -p /run/kata-containers/$id
		mount --bind /run/kata-containers/shared/containers/$id /run/kata-containers/$id
		cd /run/kata-containers/$id
		setsid sh -c 'sleep 2147483647 | runc run -d $id 2>&1 | cat >/run/$id.out' </dev/null >/dev/null 2>&1 &
		for i in \$(seq 300); do runc state $id 2>/dev/null | grep -q '"status": "running"' && break; sleep 0.1; done
		runc state $id | grep '"status"'
	EOF
}
status() { in_guest <<<"runc state $1 2>/dev/null | sed -n 's/.*\"status\": \"\\(.*\\)\".*/\\1/p'" | tr -d '\r'; }
counter() { cat "$D/upper/$1/tmp/c" 2>/dev/null; }
wait_counter_above() { # wait_counter_above ID N: the counter of ID passes N within 60 s
	local v
	for _ in $(seq 300); do
		v=$(counter "$1")
		[ -n "$v" ] && [ "$v" -gt "$2" ] && { echo "$v"; return 0; }
		sleep 0.2
	done
	fail "counter of $1 stayed at '${v:-}' (want > $2)"
}

t_doctor() {
	local out
	out=$(KATA_CR_CONFIG=$D/kata-cr.toml "$SHIM" doctor)
	# The host-side checks (inner shim, host criu, containerd) are the test
	# bed's business; here: the sandbox's guest.
	grep "sandbox $SB" <<<"$out"
	grep -q "^OK *kata-cr-agent in sandbox $SB: reachable" <<<"$out" &&
		grep -q "^OK *kata-cr-agent in sandbox $SB: kernel (criu check): passes" <<<"$out" ||
		fail "doctor did not report the guest's agent and its criu check as OK:
$out"
}

t_kernel_fragment() {
	# What guest-overlay's fragment asks of Kata's kernel build, held against
	# the kernel criu check passes in (built in or a module).
	local f k v got missing=0 n=0
	for f in "$repo"/guest-overlay/kernel/kata-cr.conf "$repo"/guest-overlay/kernel/x86_64/kata-cr.conf; do
		while IFS='=' read -r k v; do
			n=$((n + 1))
			got=$(sed -n "s/^$k=//p" "$KATA_CR_VM_GUEST/kernel.config")
			case "$got" in y | m) ;; *)
				echo "$k=$v in $(basename "$(dirname "$f")")/kata-cr.conf is '${got:-not set}' in the proof's kernel"
				missing=$((missing + 1))
				;;
			esac
		done < <(grep -E '^CONFIG_' "$f")
	done
	note "$n options of the fragment, $missing missing from the proof's kernel"
	[ "$n" -gt 0 ] || fail "no CONFIG_ options read from the fragment"
	[ "$missing" = 0 ] || fail "$missing options of the fragment are off in the proof's kernel"
}

# no_images_left C: no image dir (.kata-cr-<hex>) of ours is left in C's upper layer
no_images_left() {
	[ -d "$D/upper/$1" ] || fail "no upper dir for $1 at $D/upper/$1"
	local left
	left=$(find "$D/upper/$1" -maxdepth 1 -name '.kata-cr*' ! -name .kata-cr-init)
	[ -z "$left" ] || fail "image dirs left in $1's rootfs: $left"
}

t_capabilities() {
	local out
	out=$("$SHIM" guest "$SB" capabilities) || fail "guest capabilities failed: $out"
	head -1 <<<"$out"
	grep -q "criu check: ok" <<<"$out" || fail "criu check does not pass in the guest: $out"
	local api
	api=$(sed -n 's/.*(api \([0-9]*\)).*/\1/p' <<<"$out" | head -1)
	# API 3 is what this proxy speaks: restore checks and ReleaseImages
	[ -n "$api" ] && [ "$api" -ge 3 ] || fail "the guest's kata-cr-agent speaks API '${api:-?}', want 3 or later: $out"
}

t_container_runs() {
	new_container c1 || fail "c1 did not start"
	local v
	v=$(wait_counter_above c1 2) || exit 1
	note "counter of c1 at $v, seen in its upperdir on the host"
	local ps
	ps=$(in_guest <<<"runc exec c1 ps -o pid,args") || fail "runc exec c1 ps failed: $ps"
	grep -q '^ *1 /dev/\.kata-cr-init' <<<"$ps" || fail "kata-cr-init is not PID 1 of c1: $ps"
}

t_checkpoint_leave_running() {
	local before out
	before=$(counter c1)
	[ -n "$before" ] || fail "c1 has no counter"
	out=$("$SHIM" guest "$SB" checkpoint c1 --upperdir "$D/upper/c1" --to "$D/ck-live") || fail "checkpoint failed: $out"
	echo "$out"
	[ -f "$D/ck-live/inventory.img" ] || fail "no inventory.img in $D/ck-live"
	ls "$D/ck-live" | grep -q '^pages-.*\.img$' || fail "no pages image in $D/ck-live"
	no_images_left c1
	[ "$(status c1)" = running ] || fail "c1 is $(status c1) after a leave-running checkpoint"
	wait_counter_above c1 "$before" >/dev/null || fail "c1 stopped counting after the checkpoint (frozen?)"
}

t_checkpoint_exit() {
	local out
	out=$("$SHIM" guest "$SB" checkpoint c1 --upperdir "$D/upper/c1" --to "$D/ck" --exit) || fail "checkpoint --exit failed: $out"
	echo "$out"
	CKPT_VALUE=$(counter c1)
	[ -n "$CKPT_VALUE" ] || fail "c1 has no counter"
	echo "$CKPT_VALUE" >"$D/ckpt-value"
	note "counter at the checkpoint: $CKPT_VALUE"
	for _ in $(seq 100); do [ "$(status c1)" = stopped ] && break; sleep 0.2; done
	[ "$(status c1)" = stopped ] || fail "c1 is $(status c1) after checkpoint --exit (want stopped)"
	in_guest <<<"runc delete c1" || fail "runc delete c1 failed"
}

t_restore() {
	local v0 v
	v0=$(cat "$D/ckpt-value") && [ -n "$v0" ] || fail "no counter value from the checkpoint case"
	new_container c2 --restore || fail "c2 did not start in restore mode"
	local out
	out=$("$SHIM" guest "$SB" restore c2 --upperdir "$D/upper/c2" --from "$D/ck" 2>&1) || fail "restore into c2 failed: $out"
	echo "$out"
	v=$(wait_counter_above c2 "$v0") || exit 1
	note "counter: $v0 at the checkpoint of c1 -> $v in c2 (monotonic: resumed, not restarted)"
	[ "$v" -gt "$v0" ] && [ "$v" -lt $((v0 + 1000)) ] || fail "counter $v0 -> $v"
	no_images_left c2
}

t_after_restore() {
	local ps shm
	ps=$(in_guest <<<"runc exec c2 ps -o pid,ppid,args") || fail "runc exec c2 ps failed: $ps"
	echo "$ps"
	grep -q '^ *1 .*/dev/.kata-cr-init' <<<"$ps" || fail "kata-cr-init is not PID 1 of c2"
	grep -v kata-cr-init <<<"$ps" | grep -q 'while :' || fail "the restored workload is not in c2's pid namespace"
	shm=$(in_guest <<<"runc exec c2 cat /dev/shm/c") || fail "runc exec c2 cat /dev/shm/c failed: $shm"
	[ -n "$shm" ] && [ "$shm" -ge "$(cat "$D/ckpt-value")" ] || fail "tmpfs /dev/shm/c is '$shm' after the restore"
	in_guest <<<"runc kill c2 TERM" || fail "runc kill c2 TERM failed"
	for _ in $(seq 100); do [ "$(status c2)" = stopped ] && break; sleep 0.2; done
	[ "$(status c2)" = stopped ] || fail "c2 is $(status c2) after SIGTERM"
	in_guest <<<"runc delete c2" || fail "runc delete c2 failed"
}

t_corrupt_images_leave_nothing() {
	local out rc
	# as the test bed's restore suite does: drop the process tree
	cp -a "$D/ck" "$D/ck-bad" || fail "cannot copy the image set"
	rm "$D/ck-bad/pstree.img" || fail "no pstree.img to drop"
	new_container c3 --restore || fail "c3 did not start in restore mode"
	out=$("$SHIM" guest "$SB" restore c3 --upperdir "$D/upper/c3" --from "$D/ck-bad" 2>&1)
	rc=$?
	echo "$out" | head -3
	[ "$rc" != 0 ] || fail "restore from an image set without pstree.img succeeded"
	# the agent's restore checks refuse it before criu runs
	grep -q "restore of container c3: .*no tasks (pstree.img missing or empty)" <<<"$out" ||
		fail "the error does not name c3 and the missing process tree: $out"
	for _ in $(seq 100); do [ "$(status c3)" = stopped ] && break; sleep 0.2; done
	[ "$(status c3)" = stopped ] || fail "c3 is $(status c3) after a failed restore (want stopped: nothing half-alive)"
	no_images_left c3
	in_guest <<<"runc delete c3" || fail "runc delete c3 failed"
}

t_not_an_image_set() {
	local out rc
	mkdir -p "$D/empty"
	out=$("$SHIM" guest "$SB" restore c9 --upperdir "$D/upper/c1" --from "$D/empty" 2>&1)
	rc=$?
	echo "$out"
	[ "$rc" != 0 ] && grep -q "no criu image set" <<<"$out" || fail "want a clear refusal, got ($rc) $out"
}

printf '[agent]\nmode = "kata"\n' >"$D/kata-cr.toml"
echo "== VM proof: sandbox $SB, guest $(basename "$KATA_CR_VM_GUEST")"
case_ "doctor finds the sandbox's guest agent through the management socket" t_doctor
case_ "capabilities over hybrid vsock: criu check passes in the guest" t_capabilities
case_ "the kernel fragment's options are all on in that kernel" t_kernel_fragment
case_ "a runc container in the guest runs under kata-cr-init (bundle rewritten by the proxy)" t_container_runs
case_ "checkpoint (leave running): images reach the host through the upperdir, container keeps running" t_checkpoint_leave_running
case_ "checkpoint --exit: the container stops" t_checkpoint_exit
case_ "restore into a new container in restore mode: the counter resumes" t_restore
case_ "after restore: PID 1 is the init, the workload and its tmpfs are there, SIGTERM ends it" t_after_restore
case_ "restore from a corrupt image set (no pstree.img) is refused, naming it, and leaves nothing alive" t_corrupt_images_leave_nothing
case_ "restore from a directory that is not an image set is refused" t_not_an_image_set
echo "vm: $passed passed, $failed failed"
[ "$failed" = 0 ]
