#!/usr/bin/env bash
# End-to-end test of kata-cr-agent's Restore with kata-cr-init in restore
# mode (host mode, runc). Container A runs under kata-cr and is checkpointed
# with ctr; container B is made by hand the way the proxy will make a
# restoring container: runc, the init bind-mounted, `--restore --keep-caps
# <A's capabilities> --deny-setns`, CAP_SYS_ADMIN lent. The images are
# staged in B's rootfs and Restore is called through `kata-cr-agent ctl`.
# Needs root, containerd, runc, criu: run it in the test bed, after a static
# release build of agent-ext:
#
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#       --target x86_64-unknown-linux-gnu -p agent-ext
#   integration/testbed run -- bash agent-ext/tests/bed/restore.sh
#
# Each case prints PASS/FAIL; the last line is "N passed, N failed".
set -uo pipefail

[ "${KATA_CR_BED:-}" = 1 ] || { echo "run me inside integration/testbed" >&2; exit 2; }

SOCK=/run/kata-cr/agent.sock
ADDR=unix://$SOCK
TASKS=/run/containerd/io.containerd.runtime.v2.task/default
IMG=localhost:5000/busybox:latest
SCRATCH=$(mktemp -d /tmp/restore-e2e.XXXXXX)
PASSED=0 FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
ctl() { kata-cr-agent ctl --addr "$ADDR" "$@"; }
LOOP='trap "exit 42" TERM; i=0; while :; do i=$((i+1)); echo $i > /tmp/c; echo $i > /dev/shm/c; sleep 1; done'
exec_counter() { ctr t exec --exec-id "r$RANDOM" "$1" cat "$2" 2>/dev/null; }
counting() { # ID FILE: the counter read through exec moves within 3 s
  local a b; a=$(exec_counter "$1" "$2"); sleep 2.5; b=$(exec_counter "$1" "$2")
  echo "  $2 of $1 through exec: $a -> $b"; [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]
}
exit_of() { # FILE ID: exit status of the last /tasks/exit event of ID
  grep -F "\"$2\"" "$1" | sed -n 's#^.* /tasks/exit \({.*\)$#\1#p' | tail -1 | jq -r '.exit_status // 0'
}

if ! [ -S $SOCK ]; then
  kata-cr-agent --listen "$ADDR" 2>"$SCRATCH/agent.log" &
  for _ in $(seq 50); do [ -S $SOCK ] && break; sleep 0.1; done
fi
ctl capabilities | grep -E 'api_version|criu_version'
check "capabilities: api_version 2" sh -c "kata-cr-agent ctl --addr $ADDR capabilities | grep -q '^api_version: 2$'"

ctr events >"$SCRATCH/events" 2>&1 &
EVENTS=$!

echo "== A: a kata-cr container, checkpointed with ctr"
ctr run -d --runtime io.containerd.kata-cr.v2 "$IMG" A sh -c "$LOOP" >/dev/null
sleep 2
check "A counts" counting A /tmp/c
KEEP=$(ctr t exec --exec-id caps A awk '/^CapBnd/{print $2}' /proc/1/status)
echo "  A's capabilities (kept by B's init): $KEEP"
ctr t exec --exec-id ps A ps -o pid,ppid,args
APID=$(ctr t exec --exec-id kids A cat /proc/1/task/1/children | tr -d ' ')
echo "  A's workload: pid $APID"
ctr t checkpoint --image-path "$SCRATCH/img" A >/dev/null
check "A's images: inventory.img" test -s "$SCRATCH/img/inventory.img"
ctr t kill -s KILL A; sleep 0.5; ctr t rm A >/dev/null 2>&1; ctr c rm A

echo "== B: runc, kata-cr-init --restore, CAP_SYS_ADMIN lent"
ctr run -d --runtime io.containerd.runc.v2 --cap-add CAP_SYS_ADMIN \
  --mount type=bind,src=/usr/local/bin/kata-cr-init,dst=/dev/.kata-cr-init,options=rbind:ro \
  "$IMG" B /dev/.kata-cr-init --restore --keep-caps "$KEEP" --deny-setns -- sh -c "$LOOP" >/dev/null
RFB=$TASKS/B/rootfs
sleep 0.5
check "B's init waits, no child" test -z "$(ctr t exec --exec-id p0 B sh -c 'cat /proc/1/task/1/children')"
mkdir -m 700 "$RFB/.kata-cr/img" && cp -a "$SCRATCH/img/." "$RFB/.kata-cr/img/"
if ctl restore --id B --rootfs "$RFB" --image-dir img >"$SCRATCH/restore" 2>"$SCRATCH/restore.err"; then
  pass "Restore"
else
  fail "Restore"
fi
cat "$SCRATCH/restore" "$SCRATCH/restore.err"
LOG=$(awk '/^criu_log_path:/{print $2}' "$SCRATCH/restore")
[ -n "$LOG" ] || LOG=$(ls -d /run/kata-cr/work/*-restore-B 2>/dev/null | tail -1)/restore.log
echo "  criu command: $(cat "$(dirname "$LOG")/command" 2>/dev/null)"
grep -E "Error|Restore finished" "$LOG" | head -5
ctr t exec --exec-id ps B ps -o pid,ppid,args | tee "$SCRATCH/ps"
check "init is PID 1" grep -qE '^ *1 +0 +/dev/.kata-cr-init --restore' "$SCRATCH/ps"
check "restored sh has A's pid ($APID), child of 1" grep -qE "^ *$APID +1 +sh -c" "$SCRATCH/ps"
check "B counts in /tmp/c (rootfs)" counting B /tmp/c
check "B counts in /dev/shm/c (restored tmpfs, exec in the same mount ns)" counting B /dev/shm/c
ctr t exec --exec-id caps B grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/1/status | tee "$SCRATCH/caps"
check "init keeps exactly A's capabilities" grep -q "^CapEff:.$KEEP" "$SCRATCH/caps"
check "init has no CAP_SYS_ADMIN in any set" \
  sh -c "! awk '/^Cap/{print \$2}' $SCRATCH/caps | while read m; do [ \$(( 0x\$m >> 21 & 1 )) = 1 ] && echo x; done | grep -q x"
check "init runs with the setns-denying filter" grep -q '^Seccomp:.2' "$SCRATCH/caps"
check "staged images removed" test ! -e "$RFB/.kata-cr/img"
ctr t kill -s TERM B
for _ in $(seq 50); do ctr t ls | grep -q '^B .*STOPPED' && break; sleep 0.1; done
sleep 0.3
check "TERM ends B with the trap's status (42)" test "$(exit_of "$SCRATCH/events" B)" = 42
check "ctr t rm B" ctr t rm B
ctr c rm B

echo "== C: a restore that fails ends the waiting init"
ctr run -d --runtime io.containerd.runc.v2 --cap-add CAP_SYS_ADMIN \
  --mount type=bind,src=/usr/local/bin/kata-cr-init,dst=/dev/.kata-cr-init,options=rbind:ro \
  "$IMG" C /dev/.kata-cr-init --restore --keep-caps "$KEEP" -- sh -c "$LOOP" >/dev/null
RFC=$TASKS/C/rootfs
sleep 0.5
mkdir -m 700 "$RFC/.kata-cr/bad" && echo garbage >"$RFC/.kata-cr/bad/inventory.img"
ctl restore --id C --rootfs "$RFC" --image-dir bad 2>"$SCRATCH/e"; cat "$SCRATCH/e"
check "bad images -> FailedPrecondition with criu's error" grep -q "FAILED_PRECONDITION: criu restore failed" "$SCRATCH/e"
for _ in $(seq 50); do ctr t ls | grep -q '^C .*STOPPED' && break; sleep 0.1; done
sleep 0.3
check "C's task died with the init's 125" test "$(exit_of "$SCRATCH/events" C)" = 125
check "C's staged images removed" test ! -e "$RFC/.kata-cr/bad"
ctr t rm C >/dev/null 2>&1; ctr c rm C

echo "== errors"
ctr run -d --runtime io.containerd.runc.v2 \
  --mount type=bind,src=/usr/local/bin/kata-cr-init,dst=/dev/.kata-cr-init,options=rbind:ro \
  "$IMG" D /dev/.kata-cr-init -- sh -c "$LOOP" >/dev/null
sleep 0.5
ctl restore --id D --rootfs "$TASKS/D/rootfs" --image-dir x 2>"$SCRATCH/e"; cat "$SCRATCH/e"
check "init not in restore mode -> FailedPrecondition" grep -q "FAILED_PRECONDITION.*not in restore mode" "$SCRATCH/e"
check "D untouched" counting D /tmp/c
ctr t kill -s KILL D; sleep 0.5; ctr t rm D >/dev/null 2>&1; ctr c rm D

kill $EVENTS 2>/dev/null
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
