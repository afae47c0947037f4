#!/usr/bin/env bash
# Restore through kata-cr, against vanilla runc in the same run:
#   integration/testbed run -- integration/suites/run-all
# Three checkpoint/restore cycles under ctr (restore --live from the checkpoint
# image) and under CRI (checkpoint --export, new pod, create from the archive);
# after a restore the task is coherent: exec sees the restored processes and their
# tmpfs, signals and exit statuses are runc's, TaskExit is published, rm works, a
# TCP server answers, a 64 MiB buffer is byte-exact; exec'd processes get the
# container's own capabilities; and the failure paths leave nothing half-alive.
# shellcheck source=integration/suites/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

# The counter goes on from what it finds in /tmp/c, so a restore that lost the
# process state would restart it at 1 (and one that lost the file would too).
COUNTER='i=$(cat /tmp/c 2>/dev/null || echo 0); trap "exit 42" TERM; trap "exit 43" USR1; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; echo $i > /dev/shm/c; sleep 0.2; done'
# A TCP server on loopback (busybox httpd) and a 64 MiB buffer in memory (tmpfs),
# beside the counter.
RICH="dd if=/dev/urandom of=/dev/shm/buf bs=1M count=64 2>/dev/null; sha256sum /dev/shm/buf | cut -c1-64 > /tmp/buf.sum; mkdir -p /tmp/www && echo ping > /tmp/www/index.html && httpd -f -p 127.0.0.1:18081 -h /tmp/www & $COUNTER"

counter() { ctr t exec --exec-id "x$RANDOM$RANDOM" "$1" cat /tmp/c 2>/dev/null; }
exec_in() { local id=$1; shift; ctr t exec --exec-id "e$RANDOM$RANDOM" "$id" "$@"; }

ctr_cycle() { # ctr_cycle ID REF: checkpoint, kill, rm, restore --live; prints before/after
  local id=$1 ref=$2 before after
  before=$(counter "$id")
  # --rw: the rootfs changes (httpd's files) travel with the checkpoint
  must ctr c checkpoint --task --rw "$id" "$ref" >/dev/null || exit 1
  ctr t kill -s 9 "$id" >/dev/null 2>&1; wait_status "$id" STOPPED
  must ctr t rm "$id" >/dev/null 2>&1 || true
  must ctr c rm "$id" >/dev/null || exit 1
  must ctr c restore --live --rw "$id" "$ref" >/dev/null || exit 1
  wait_status "$id" RUNNING
  sleep 0.5
  after=$(counter "$id")
  ctr images rm "$ref" >/dev/null 2>&1
  [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] || fail "counter $before -> $after across the restore"
  echo "monotonic"
}

scn_ctr_three_cycles() {
  local id i; id=$(uid cyc)
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  for i in 1 2 3; do
    echo "cycle $i: $(ctr_cycle "$id" "localhost/cyc-$id:$i")"
    sleep 1.05 # ctr names checkpoint images by the second
  done
  # kata-cr-init's command line holds the command too: leave it out
  echo "after 3 cycles: $(exec_in "$id" ps -o args | grep 'while :' | grep -vc '^/dev/.kata-cr-init')" workload process
}
t_ctr_three_cycles() { run_both scn_ctr_three_cycles; }

scn_after_restore_semantics() {
  local id ev; id=$(uid sem); ev=$E2E_CASE_DIR/events.$RT
  # Host network: ctr gives a container a network namespace whose loopback is down.
  track_ctr "$id"
  must ctr run -d --net-host --runtime "$(rt_ctr)" "$IMG" "$id" sh -c "$RICH" >/dev/null || exit 1
  wait_status "$id" RUNNING; sleep 2
  local sum; sum=$(exec_in "$id" cat /tmp/buf.sum)
  echo "cycle: $(ctr_cycle "$id" "localhost/sem-$id:1")"
  local tmpfs exact tcp procs eff
  tmpfs=$(exec_in "$id" cat /dev/shm/c >/dev/null && echo yes)
  exact=$([ -n "$sum" ] && [ "$(exec_in "$id" sha256sum /dev/shm/buf | cut -c1-64)" = "$sum" ] && echo yes || echo no)
  tcp=$(timeout 5 ctr t exec --exec-id "n$RANDOM" "$id" wget -qO- http://127.0.0.1:18081/ 2>&1 | head -1)
  procs=$(exec_in "$id" ps -o args | grep 'while :' | grep -vc '^/dev/.kata-cr-init')
  eff=$(exec_in "$id" grep CapEff /proc/self/status | awk '{print $2}')
  echo "tmpfs counter readable through exec: $tmpfs"
  echo "64 MiB buffer byte-exact: $exact"
  echo "tcp server answers: $tcp"
  echo "workload processes seen by exec: $procs"
  echo "exec'd process has CAP_SYS_ADMIN: $(( (0x${eff:-0} >> 21) & 1 ))"
  expect_eq "tmpfs through exec" yes "$tmpfs"
  expect_eq "64 MiB buffer" yes "$exact"
  expect_eq "tcp server" ping "$tcp"
  expect_eq "workload processes" 1 "$procs"
  expect_eq "CAP_SYS_ADMIN of an exec'd process" 0 "$(( (0x${eff:-0} >> 21) & 1 ))"
  events_start "$ev"
  must ctr t kill -s USR1 "$id" || exit 1
  wait_status "$id" STOPPED
  wait_line 5 "$ev" "/tasks/exit"
  events_stop
  echo "after USR1: $(events_of "$ev" "$id" | grep exit)"
  echo "delete: $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
}
t_after_restore_semantics() { run_both scn_after_restore_semantics; }

scn_restored_term_and_kill() {
  local id; id=$(uid tk)
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  echo "cycle: $(ctr_cycle "$id" "localhost/tk-$id:1")"
  must ctr t kill -s TERM "$id" || exit 1
  wait_status "$id" STOPPED
  echo "TERM (trapped): $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
  ctr c rm "$id" >/dev/null
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  sleep 1.05
  echo "cycle: $(ctr_cycle "$id" "localhost/tk-$id:2")"
  must ctr t kill -s KILL "$id" || exit 1
  wait_status "$id" STOPPED
  echo "KILL: $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
}
t_restored_term_and_kill() { run_both scn_restored_term_and_kill; }

scn_cri_three_cycles() {
  local d=$E2E_CASE_DIR pod c i tar before after
  ctr_json ck "$d/c.$RT.json" "$COUNTER"
  pod_json "$(uid pod0)" "$d/pod0.$RT.json"
  pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod0.$RT.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.$RT.json" "$d/pod0.$RT.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  wait_cri_state "$c" CONTAINER_RUNNING; sleep 0.6
  for i in 1 2 3; do
    before=$(crictl exec -s "$c" cat /tmp/c)
    tar=$d/ck-$RT-$i.tar
    must crictl checkpoint --export="$tar" "$c" >/dev/null || exit 1
    must crictl rmp -f "$pod" >/dev/null || exit 1
    pod_json "$(uid "pod$i")" "$d/pod$i.$RT.json"
    pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod$i.$RT.json") || exit 1
    track_pod "$pod"
    jq --arg t "$tar" '.image.image = $t' "$d/c.$RT.json" >"$d/r.$RT.json"
    c=$(must crictl create "$pod" "$d/r.$RT.json" "$d/pod$i.$RT.json") || exit 1
    must crictl start "$c" >/dev/null || exit 1
    wait_cri_state "$c" CONTAINER_RUNNING
    sleep 0.5
    after=$(crictl exec -s "$c" cat /tmp/c)
    [ -n "$before" ] && [ -n "$after" ] && [ "$after" -gt "$before" ] || fail "cycle $i: counter $before -> $after"
    echo "cycle $i: monotonic, rootfs file survived: $(crictl exec -s "$c" test -f /tmp/c && echo yes)"
  done
  must crictl rmp -f "$pod" >/dev/null || exit 1
}
t_cri_three_cycles() { run_both scn_cri_three_cycles; }

# ------------------------------------------------------------------ kata-cr only
t_runc_checkpoint_under_kata_cr() {
  # A checkpoint made by vanilla runc (the whole container, PID 1 included)
  # restored in a kata-cr pod: CRI takes the runtime from the restoring pod.
  local d=$E2E_CASE_DIR pod c out
  RT=runc
  ctr_json ck "$d/c.json" "$COUNTER"
  pod_json "$(uid pr)" "$d/pr.json"
  pod=$(must crictl runp --runtime runc "$d/pr.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.json" "$d/pr.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  wait_cri_state "$c" CONTAINER_RUNNING; sleep 0.6
  must crictl checkpoint --export="$d/runc.tar" "$c" >/dev/null || exit 1
  must crictl rmp -f "$pod" >/dev/null || exit 1
  RT=kata-cr
  pod_json "$(uid pk)" "$d/pk.json"
  pod=$(must crictl runp --runtime kata-cr "$d/pk.json") || exit 1
  track_pod "$pod"
  jq --arg t "$d/runc.tar" '.image.image = $t' "$d/c.json" >"$d/r.json"
  c=$(must crictl create "$pod" "$d/r.json" "$d/pk.json") || exit 1
  if out=$(crictl start "$c" 2>&1); then
    info "a runc checkpoint restored under kata-cr: counter $(crictl exec -s "$c" cat /tmp/c)"
  else
    info "error: $(head -c 600 <<<"$out")"
    grep -qi "criu\|restore" <<<"$out" || fail "the error does not say what failed: $out"
    wait_for 10 eval "[ \"\$(cri_state $c)\" != CONTAINER_RUNNING ]" || fail "container left running"
    expect_eq "restored processes left anywhere" 0 "$(pgrep -f 'while :; do i=' | count)"
  fi
}

t_failed_restore_leaves_nothing() {
  RT=kata-cr
  local d=$E2E_CASE_DIR pod c tar out
  ctr_json ck "$d/c.json" "$COUNTER"
  pod_json "$(uid pa)" "$d/pa.json"
  pod=$(must crictl runp --runtime kata-cr "$d/pa.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.json" "$d/pa.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  wait_cri_state "$c" CONTAINER_RUNNING; sleep 0.6
  must crictl checkpoint --export="$d/ck.tar" "$c" >/dev/null || exit 1
  must crictl rmp -f "$pod" >/dev/null || exit 1
  # Corrupt the image set: drop the process tree.
  mkdir -p "$d/x" && tar -C "$d/x" -xf "$d/ck.tar" && rm -f "$d/x/checkpoint/pstree.img"
  tar -C "$d/x" -cf "$d/bad.tar" .
  pod_json "$(uid pb)" "$d/pb.json"
  pod=$(must crictl runp --runtime kata-cr "$d/pb.json") || exit 1
  track_pod "$pod"
  jq --arg t "$d/bad.tar" '.image.image = $t' "$d/c.json" >"$d/r.json"
  c=$(must crictl create "$pod" "$d/r.json" "$d/pb.json") || exit 1
  if out=$(crictl start "$c" 2>&1); then
    fail "start of a restore from a corrupt image set succeeded"
  fi
  info "error: $(head -c 600 <<<"$out")"
  grep -qi "criu\|restore" <<<"$out" || fail "the error does not carry criu's words: $out"
  wait_for 10 eval "[ \"\$(cri_state $c)\" != CONTAINER_RUNNING ]" || fail "container still running: $(cri_state "$c")"
  local left; left=$(pgrep -f 'while :; do i=' | count)
  expect_eq "restored workload processes left anywhere" 0 "$left"
}

e2e_cases() {
  case_ "A/B ctr: 3 checkpoint/kill/rm/restore --live cycles, counter monotonic" t_ctr_three_cycles
  case_ "A/B after restore: exec, tmpfs, 64 MiB byte-exact, tcp, caps, USR1 exit + TaskExit" t_after_restore_semantics
  case_ "A/B restored task: TERM (trapped) and KILL exit codes" t_restored_term_and_kill
  case_ "A/B CRI: 3 export/new pod/create-from-archive cycles" t_cri_three_cycles
  case_ "kata-cr: a runc checkpoint restored under kata-cr works or fails clearly" t_runc_checkpoint_under_kata_cr
  case_ "kata-cr: a failed restore leaves nothing half-alive" t_failed_restore_leaves_nothing
}

e2e_main
