#!/usr/bin/env bash
# End-to-end test of kata-cr-agent's Checkpoint on runc containers (host
# mode). Needs root, containerd, runc and criu: run it in the project's test
# bed, after a static release build of agent-ext:
#
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#       --target x86_64-unknown-linux-gnu -p agent-ext
#   integration/testbed run -- bash agent-ext/tests/bed/checkpoint.sh
#
# Each case prints PASS/FAIL; the last line is "N passed, N failed".
set -uo pipefail

[ "${KATA_CR_BED:-}" = 1 ] || { echo "run me inside integration/testbed" >&2; exit 2; }

SOCK=/run/kata-cr/agent.sock
ADDR=unix://$SOCK
TASKS=/run/containerd/io.containerd.runtime.v2.task/default
IMG=localhost:5000/busybox:latest
SCRATCH=$(mktemp -d /tmp/agent-e2e.XXXXXX)
PASSED=0 FAILED=0
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
not() { ! "$@"; }
ctl() { kata-cr-agent ctl --addr "${CTL_ADDR:-$ADDR}" "$@"; }
freezer_state() { cat "/sys/fs/cgroup/freezer/default/$1/freezer.state"; }
counter() { cat "$TASKS/$1/rootfs/tmp/c" 2>/dev/null; }
LOOP='i=0; while :; do i=$((i+1)); echo $i > /tmp/c; echo $i > /dev/shm/c; sleep 1; done'
run_container() { # ID [extra ctr args...]
  local id=$1; shift
  ctr run -d --runtime io.containerd.runc.v2 "$@" \
    --mount type=bind,src=/usr/local/bin/kata-cr-init,dst=/dev/.kata-cr-init,options=rbind:ro \
    "$IMG" "$id" /dev/.kata-cr-init -- sh -c "$LOOP" >/dev/null
  for _ in $(seq 50); do [ -s "$TASKS/$id/rootfs/tmp/c" ] && return 0; sleep 0.1; done
  echo "container $id did not start counting" >&2; return 1
}
counting() { # ID: the counter moves within 3 s
  local a b; a=$(counter "$1"); sleep 2.5; b=$(counter "$1")
  echo "  counter of $1: $a -> $b"; [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ]
}

# The bed starts the agent when the binary is there; start it otherwise.
if ! [ -S $SOCK ]; then
  kata-cr-agent --listen "$ADDR" 2>"$SCRATCH/agent.log" &
  for _ in $(seq 50); do [ -S $SOCK ] && break; sleep 0.1; done
fi
check "socket is 0600 in a 0700 dir" test "$(stat -c %a $SOCK)$(stat -c %a /run/kata-cr)" = 600700

echo "== capabilities"
ctl capabilities | tee "$SCRATCH/caps"
check "capabilities: api_version 2" grep -q "^api_version: 2$" "$SCRATCH/caps"
check "capabilities: criu 4.x" grep -q '^criu_version: 4\.' "$SCRATCH/caps"
check "capabilities: criu check ok" grep -q '^criu_check_ok: true$' "$SCRATCH/caps"

echo "== checkpoint of a paused container, leave running"
run_container c1 || exit 1
RF1=$TASKS/c1/rootfs
ctr t pause c1
check "c1 frozen before" test "$(freezer_state c1)" = FROZEN
if ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ckpt-1 | tee "$SCRATCH/ckpt1"; then
  pass "checkpoint of paused c1"
else
  fail "checkpoint of paused c1"
fi
check "c1 still frozen after" test "$(freezer_state c1)" = FROZEN
ctr t resume c1
ls -la "$RF1/.kata-cr/" "$RF1/.kata-cr/ckpt-1"
for f in inventory.img pstree.img; do check "image $f exists" test -s "$RF1/.kata-cr/ckpt-1/$f"; done
check "pages-*.img exist" compgen -G "$RF1/.kata-cr/ckpt-1/pages-*.img"
check "tmpfs (/dev/shm) saved" compgen -G "$RF1/.kata-cr/ckpt-1/tmpfs-dev-*.tar.gz.img"
check "image dir is 0700" test "$(stat -c %a "$RF1/.kata-cr/ckpt-1")" = 700
check ".kata-cr keeps the runtime's mode" test "$(stat -c %a "$RF1/.kata-cr")" = 755
check "c1 keeps counting after resume" counting c1
LOG=$(awk '/^criu_log_path:/{print $2}' "$SCRATCH/ckpt1")
check "criu log kept outside the rootfs ($LOG)" grep -q "Dumping finished successfully" "$LOG"
echo "  criu command: $(cat "$(dirname "$LOG")/command")"

echo "== checkpoint of a running (not paused) container"
check "checkpoint of running c1" ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ckpt-2
check "c1 thawed after" test "$(freezer_state c1)" = THAWED
check "c1 keeps counting" counting c1

echo "== errors"
ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ckpt-1 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "existing image dir -> AlreadyExists" grep -q ALREADY_EXISTS "$SCRATCH/e"
ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ../evil 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "bad image_dir -> InvalidArgument" grep -q INVALID_ARGUMENT "$SCRATCH/e"
mkdir -p /tmp/not-a-container
ctl checkpoint --id nope --rootfs /tmp/not-a-container --image-dir x 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "unknown rootfs -> NotFound naming it" grep -q "NOT_FOUND.*/tmp/not-a-container" "$SCRATCH/e"

echo "== planted .kata-cr symlink"
run_container c2 || exit 1
RF2=$TASKS/c2/rootfs
mkdir -p /tmp/outside
# What a container's root could do to its rootfs (done from the host side
# here: inside, /.kata-cr holds the init's mount point).
mv "$RF2/.kata-cr" "$RF2/.kata-cr.moved" && ln -s /tmp/outside "$RF2/.kata-cr"
ctl checkpoint --id c2 --rootfs "$RF2" --image-dir ckpt-1 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "symlinked .kata-cr -> InvalidArgument naming it" grep -q "INVALID_ARGUMENT.*\.kata-cr" "$SCRATCH/e"
check "nothing created outside" test -z "$(ls -A /tmp/outside)"
rm "$RF2/.kata-cr" && mv "$RF2/.kata-cr.moved" "$RF2/.kata-cr"
check "c2 still counting" counting c2

echo "== criu failing mid-dump (post-dump action script exits 1)"
cat >"$SCRATCH/fail-post-dump" <<'SH'
#!/bin/sh
[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && { echo "forced failure at post-dump" >&2; exit 1; }
exit 0
SH
printf '#!/bin/sh\nexec criu "$@" --action-script %s\n' "$SCRATCH/fail-post-dump" >"$SCRATCH/criu-failing"
chmod +x "$SCRATCH/fail-post-dump" "$SCRATCH/criu-failing"
kata-cr-agent --listen "unix://$SCRATCH/bad/agent.sock" --criu "$SCRATCH/criu-failing" \
  --work-dir "$SCRATCH/work" 2>"$SCRATCH/agent-bad.log" &
BAD=$!
for _ in $(seq 50); do [ -S "$SCRATCH/bad/agent.sock" ] && break; sleep 0.1; done
ctr t pause c2
CTL_ADDR=unix://$SCRATCH/bad/agent.sock ctl checkpoint --id c2 --rootfs "$RF2" --image-dir ckpt-bad 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "criu failure -> FailedPrecondition with criu's first error" \
  grep -q "FAILED_PRECONDITION: criu dump failed.*Error (" "$SCRATCH/e"
check "  ... not the rlimit error criu ignores" not grep -q "criu dump failed.*rlimit" "$SCRATCH/e"
check "message has the log tail and the log path" grep -q -- "--- full log: $SCRATCH/work/" "$SCRATCH/e"
check "no partial image dir" test ! -e "$RF2/.kata-cr/ckpt-bad"
check "c2 frozen as before" test "$(freezer_state c2)" = FROZEN
ctr t resume c2
check "c2 running after" counting c2
# Same failure on a running container: left running, not frozen.
CTL_ADDR=unix://$SCRATCH/bad/agent.sock ctl checkpoint --id c2 --rootfs "$RF2" --image-dir ckpt-bad2 2>/dev/null
check "running c2: thawed after failure" test "$(freezer_state c2)" = THAWED
check "running c2: no partial image dir" test ! -e "$RF2/.kata-cr/ckpt-bad2"
check "running c2: still counting" counting c2
# criu that does not exist.
kill $BAD; wait $BAD 2>/dev/null
kata-cr-agent --listen "unix://$SCRATCH/none/agent.sock" --criu /nonexistent/criu --work-dir "$SCRATCH/work2" 2>/dev/null &
NONE=$!
for _ in $(seq 50); do [ -S "$SCRATCH/none/agent.sock" ] && break; sleep 0.1; done
CTL_ADDR=unix://$SCRATCH/none/agent.sock ctl checkpoint --id c2 --rootfs "$RF2" --image-dir x 2>"$SCRATCH/e" ; cat "$SCRATCH/e"
check "missing criu -> FailedPrecondition" grep -q "FAILED_PRECONDITION.*criu not found" "$SCRATCH/e"
check "missing criu: no image dir" test ! -e "$RF2/.kata-cr/x"
kill $NONE; wait $NONE 2>/dev/null

echo "== concurrent checkpoints of one container"
ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ckpt-c1 >/dev/null 2>"$SCRATCH/e1" &
P1=$!
ctl checkpoint --id c1 --rootfs "$RF1" --image-dir ckpt-c2 >/dev/null 2>"$SCRATCH/e2"
R2=$?
wait $P1; R1=$?
cat "$SCRATCH/e1" "$SCRATCH/e2"
if [ $R1 = 0 ] && [ $R2 = 0 ]; then
  echo "  (both finished; the second did not overlap the first)"; pass "concurrent checkpoints"
elif grep -q "ABORTED.*already in progress" "$SCRATCH/e1" "$SCRATCH/e2"; then
  pass "concurrent checkpoint -> Aborted"
else
  fail "concurrent checkpoints"
fi

echo "== restore of ckpt-1 into a fresh container (criu.md's way)"
ctr run -d --runtime io.containerd.runc.v2 --privileged \
  --mount type=bind,src=/usr/local/bin/kata-cr-init,dst=/dev/.kata-cr-init,options=rbind:ro \
  "$IMG" r1 sleep 100000 >/dev/null
sleep 0.5
RINIT=$(ctr t ls | awk '$1=="r1"{print $2}')
RR=$TASKS/r1/rootfs
(
  exec 7</proc/$RINIT/ns/pid 8</proc/$RINIT/ns/net
  nsenter -t "$RINIT" -u -i criu restore -D "$RF1/.kata-cr/ckpt-1" -o "$SCRATCH/restore.log" -v4 \
    --inherit-fd 'fd[7]:extpid' --inherit-fd 'fd[8]:extnet' --root "$RR" \
    --ext-mount-map "rootfs:$RR" --ext-mount-map auto --manage-cgroups=ignore --restore-detached
) && RESTORED=1 || RESTORED=0
if [ $RESTORED = 1 ]; then
  pass "criu restore into r1"
  ctr t exec --exec-id ps r1 ps -o pid,ppid,comm || true
  a=$(ctr t exec --exec-id c1 r1 cat /tmp/c); sleep 2.5; b=$(ctr t exec --exec-id c2 r1 cat /tmp/c)
  echo "  r1 /tmp/c: $a -> $b (c1 now at $(counter c1))"
  check "restored workload counts in r1" test "$b" -gt "$a"
else
  grep -E "Error" "$SCRATCH/restore.log" | head; tail -n 20 "$SCRATCH/restore.log"
  fail "criu restore into r1 (nice to have)"
fi

for c in c1 c2 r1; do ctr t kill -s KILL $c >/dev/null 2>&1; done
sleep 1
for c in c1 c2 r1; do ctr t rm -f $c >/dev/null 2>&1; ctr c rm $c >/dev/null 2>&1; done
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
