#!/usr/bin/env bash
# kata-cr-agent on its own, through `kata-cr-agent ctl` (host mode, runc containers
# that run kata-cr-init as PID 1 as the proxy would make them): what the proxy's
# suites cannot see from outside. Its socket's modes; Checkpoint of a paused and of a
# running container (freezer state kept, the image set's files and modes, criu's log
# kept outside the rootfs); its refusals and their codes; criu failing mid-dump (the
# freezer state put back, no partial image set, criu's first error and where its log
# is); a missing criu; two checkpoints at once; Restore into a container whose init
# waits in restore mode (capabilities, the setns filter, the restored workload's pid
# and tmpfs, exit status), a failed restore ending the init (125), and Restore into
# an init that is not waiting.
#   integration/testbed run -- integration/suites/agent.sh
# (These were agent-ext/tests/bed/*.sh, which nothing ran.)
# shellcheck disable=SC2016 # $ in single quotes is for the container's shell
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

SOCK=/run/kata-cr/agent.sock
TASKS=/run/containerd/io.containerd.runtime.v2.task/$CTR_NS
INIT_BIN=/usr/local/bin/kata-cr-init
# (written by rename, so that a reader never sees a half-written, empty file)
LOOP='trap "exit 42" TERM; i=0; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; echo $i > /dev/shm/c.n; mv /dev/shm/c.n /dev/shm/c; sleep 0.2; done'

ctl() { kata-cr-agent ctl --addr "${CTL_ADDR:-unix://$SOCK}" "$@"; }
freezer_state() { cat "/sys/fs/cgroup/freezer/$CTR_NS/$1/freezer.state"; }
counter() { cat "$TASKS/$1/rootfs/tmp/c" 2>/dev/null; }
counter_above() { local v; v=$(counter "$1"); [ -n "$v" ] && [ "$v" -gt "$2" ]; }
expect_counting() { # expect_counting ID: the counter (read in the rootfs) moves on
  local a; a=$(counter "$1")
  [ -n "$a" ] || fail "$1: no counter"
  poll 5 counter_above "$1" "$a" || fail "$1: counter not moving ($a -> $(counter "$1"))"
}
# run_init_container ID [ctr run args...] -- [init args...]: a runc container whose
# PID 1 is kata-cr-init (bind-mounted as the proxy mounts it) running LOOP
run_init_container() {
  local id=$1; shift
  local ctr_args=() init_args=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do ctr_args+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  init_args=("$@")
  track_ctr "$id"
  must ctr run -d --runtime io.containerd.runc.v2 "${ctr_args[@]}" \
    --mount "type=bind,src=$INIT_BIN,dst=/dev/.kata-cr-init,options=rbind:ro" \
    "$IMG" "$id" /dev/.kata-cr-init "${init_args[@]}" -- sh -c "$LOOP" >/dev/null
  wait_status "$id" RUNNING
}
start_counting() { # start_counting ID: a counting container under kata-cr-init
  run_init_container "$1"
  poll 10 counter_above "$1" 0 || fail "$1 never started counting"
}
# agent_at DIR [ARGS...]: a second kata-cr-agent listening in DIR (stopped with the case)
agent_at() {
  local dir=$1; shift
  mkdir -p "$dir"
  kata-cr-agent --listen "unix://$dir/agent.sock" "$@" 2>"$dir/agent.log" &
  track_pid $!
  wait_for 10 test -S "$dir/agent.sock"
}

# ------------------------------------------------------------------ checkpoint
t_socket_and_capabilities() {
  local caps
  expect_eq "socket mode, then its directory's" 600700 "$(stat -c %a "$SOCK")$(stat -c %a "$(dirname "$SOCK")")"
  caps=$(must ctl capabilities)
  info "$(tr '\n' ' ' <<<"$caps")"
  grep -qx 'api_version: 2' <<<"$caps" || fail "capabilities: not api_version 2: $caps"
  grep -q '^criu_version: 4\.' <<<"$caps" || fail "capabilities: not criu 4.x: $caps"
  grep -qx 'criu_check_ok: true' <<<"$caps" || fail "capabilities: criu check does not pass: $caps"
}

t_checkpoint_paused_and_running() {
  local id rf out log
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  must ctr t pause "$id"
  expect_eq "freezer before" FROZEN "$(freezer_state "$id")"
  out=$(must ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-1) || exit 1
  expect_eq "freezer after a checkpoint of a paused container" FROZEN "$(freezer_state "$id")"
  must ctr t resume "$id"
  local f
  for f in inventory.img pstree.img; do
    [ -s "$rf/.kata-cr/ckpt-1/$f" ] || fail "no $f in the image set"
  done
  compgen -G "$rf/.kata-cr/ckpt-1/pages-*.img" >/dev/null || fail "no pages-*.img"
  compgen -G "$rf/.kata-cr/ckpt-1/tmpfs-dev-*.tar.gz.img" >/dev/null || fail "/dev/shm (tmpfs) not saved"
  expect_eq "image dir mode" 700 "$(stat -c %a "$rf/.kata-cr/ckpt-1")"
  expect_eq ".kata-cr (made by the agent) mode" 700 "$(stat -c %a "$rf/.kata-cr")"
  expect_counting "$id"
  log=$(awk '/^criu_log_path:/ {print $2}' <<<"$out")
  [ -n "$log" ] || fail "no criu_log_path in: $out"
  [[ $log != "$rf"* ]] || fail "criu's log is in the rootfs: $log"
  grep -q "Dumping finished successfully" "$log" || fail "criu's log $log does not say the dump finished"
  info "criu command: $(cat "$(dirname "$log")/command")"
  # a running (not paused) container: thawed afterwards
  must ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-2 >/dev/null
  expect_eq "freezer after a checkpoint of a running container" THAWED "$(freezer_state "$id")"
  expect_counting "$id"
}

t_checkpoint_refusals() {
  local id rf err d=$E2E_CASE_DIR
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  must ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-1 >/dev/null
  ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-1 2>"$d/e" && fail "a second checkpoint into ckpt-1 succeeded"
  grep -q ALREADY_EXISTS "$d/e" || fail "existing image dir: not ALREADY_EXISTS: $(cat "$d/e")"
  ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ../evil 2>"$d/e" && fail "image dir ../evil accepted"
  grep -q INVALID_ARGUMENT "$d/e" || fail "image dir ../evil: not INVALID_ARGUMENT: $(cat "$d/e")"
  mkdir -p "$d/not-a-container"
  ctl checkpoint --id nope --rootfs "$d/not-a-container" --image-dir x 2>"$d/e" && fail "a rootfs with no container accepted"
  grep -q "NOT_FOUND.*$d/not-a-container" "$d/e" || fail "unknown rootfs: not NOT_FOUND naming it: $(cat "$d/e")"
  # A planted symlink (done from the host side: inside, /.kata-cr holds the init's
  # mount point)
  mkdir -p "$d/outside"
  must mv "$rf/.kata-cr" "$rf/.kata-cr.moved"
  must ln -s "$d/outside" "$rf/.kata-cr"
  ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-2 2>"$d/e" && fail "a symlinked .kata-cr was followed"
  grep -q 'INVALID_ARGUMENT.*\.kata-cr' "$d/e" || fail "symlinked .kata-cr: not INVALID_ARGUMENT naming it: $(cat "$d/e")"
  expect_eq "entries created outside" "" "$(ls -A "$d/outside")"
  must rm "$rf/.kata-cr"
  must mv "$rf/.kata-cr.moved" "$rf/.kata-cr"
  expect_counting "$id"
}

t_criu_failing_mid_dump() {
  local id rf d=$E2E_CASE_DIR
  id=$(uid c2); rf=$TASKS/$id/rootfs
  start_counting "$id"
  # criu with an action script that fails at post-dump
  printf '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && { echo "forced failure at post-dump" >&2; exit 1; }\nexit 0\n' >"$d/fail-post-dump"
  printf '#!/bin/sh\nexec criu "$@" --action-script %s\n' "$d/fail-post-dump" >"$d/criu-failing"
  chmod +x "$d/fail-post-dump" "$d/criu-failing"
  agent_at "$d/bad" --criu "$d/criu-failing" --work-dir "$d/work"
  must ctr t pause "$id"
  CTL_ADDR=unix://$d/bad/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-bad 2>"$d/e" \
    && fail "checkpoint with a failing criu succeeded"
  info "$(head -c 400 "$d/e")"
  grep -q "FAILED_PRECONDITION: criu dump failed.*Error (" "$d/e" || fail "not FAILED_PRECONDITION with criu's first error: $(head -c 600 "$d/e")"
  ! grep -q "criu dump failed.*rlimit" "$d/e" || fail "the summary is the rlimit error criu ignores"
  grep -q -- "--- full log: $d/work/" "$d/e" || fail "no log tail and log path: $(head -c 600 "$d/e")"
  [ ! -e "$rf/.kata-cr/ckpt-bad" ] || fail "partial image dir left"
  expect_eq "freezer after the failure (paused before)" FROZEN "$(freezer_state "$id")"
  must ctr t resume "$id"
  expect_counting "$id"
  # the same failure on a running container: thawed, not frozen
  CTL_ADDR=unix://$d/bad/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-bad2 2>/dev/null \
    && fail "checkpoint with a failing criu succeeded"
  expect_eq "freezer after the failure (running before)" THAWED "$(freezer_state "$id")"
  [ ! -e "$rf/.kata-cr/ckpt-bad2" ] || fail "partial image dir left"
  expect_counting "$id"
  # a criu that does not exist
  agent_at "$d/none" --criu /nonexistent/criu --work-dir "$d/work2"
  CTL_ADDR=unix://$d/none/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" --image-dir x 2>"$d/e" \
    && fail "checkpoint without criu succeeded"
  # (the agent now runs criu through its pidns-exec helper: the error no longer says
  # "criu not found", only that its exec found no such file)
  grep -qE "FAILED_PRECONDITION.*(criu not found|criu dump failed.*exec: No such file or directory)" "$d/e" \
    || fail "missing criu: $(cat "$d/e")"
  [ ! -e "$rf/.kata-cr/x" ] || fail "image dir left without criu"
}

t_concurrent_checkpoints() {
  local id rf d=$E2E_CASE_DIR p1 r1 r2
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-a >/dev/null 2>"$d/e1" &
  p1=$!
  ctl checkpoint --id "$id" --rootfs "$rf" --image-dir ckpt-b >/dev/null 2>"$d/e2" && r2=0 || r2=$?
  wait "$p1" && r1=0 || r1=$?
  info "first: exit $r1 $(head -c 200 "$d/e1"); second: exit $r2 $(head -c 200 "$d/e2")"
  [ "$r1" = 0 ] || [ "$r2" = 0 ] || fail "neither checkpoint succeeded"
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    grep -q "ABORTED.*already in progress" "$d/e1" "$d/e2" || fail "the refused one is not ABORTED 'already in progress'"
  fi
  expect_eq "freezer after" THAWED "$(freezer_state "$id")"
  expect_counting "$id"
}

# ------------------------------------------------------------------ restore
# A kata-cr container A, checkpointed with ctr; B made by hand as the proxy makes a
# restoring container: runc, the init in restore mode keeping A's capabilities,
# denying setns, CAP_SYS_ADMIN lent; the image set staged in B's rootfs.
exit_of() { # exit_of EVENTS ID: exit status of the last /tasks/exit event of ID
  grep -F "\"$2\"" "$1" | sed -n 's#^.* /tasks/exit \({.*\)$#\1#p' | tail -n 1 | jq -r '.exit_status // 0'
}
exec_counter() { ctr t exec --exec-id "r$RANDOM$RANDOM" "$1" cat "$2" 2>/dev/null; }
exec_counter_above() { local v; v=$(exec_counter "$1" "$2"); [ -n "$v" ] && [ "$v" -gt "$3" ]; }
expect_exec_counting() { # ID FILE: the counter read through exec moves on
  local a; a=$(exec_counter "$1" "$2")
  [ -n "$a" ] || fail "$1: no $2 through exec"
  poll 5 exec_counter_above "$1" "$2" "$a" || fail "$1: $2 not moving through exec ($a -> $(exec_counter "$1" "$2"))"
}
checkpoint_a() { # checkpoint_a A DIR: prints A's bounding capabilities and workload pid
  local a=$1 keep pid
  track_ctr "$a"
  must ctr run -d --runtime io.containerd.kata-cr.v2 "$IMG" "$a" sh -c "$LOOP" >/dev/null
  wait_status "$a" RUNNING
  poll 10 exec_counter_above "$a" /tmp/c 0 || fail "$a never started counting"
  keep=$(must ctr t exec --exec-id caps "$a" awk '/^CapBnd/ {print $2}' /proc/1/status) || exit 1
  pid=$(must ctr t exec --exec-id kids "$a" cat /proc/1/task/1/children | tr -d ' ') || exit 1
  must ctr t checkpoint --image-path "$2" "$a" >/dev/null
  [ -s "$2/inventory.img" ] || fail "no inventory.img in $2"
  must ctr t kill -s KILL "$a"
  wait_status "$a" STOPPED
  must ctr t rm "$a" >/dev/null
  must ctr c rm "$a"
  echo "$keep $pid"
}
t_restore_into_waiting_init() {
  local d=$E2E_CASE_DIR a b keep apid rfb ev out log
  a=$(uid a); b=$(uid b); ev=$d/events
  events_start "$ev"
  read -r keep apid < <(checkpoint_a "$a" "$d/img") || exit 1
  [ -n "$apid" ] || exit 1
  info "A's capabilities (kept by B's init): $keep; A's workload: pid $apid"
  run_init_container "$b" --cap-add CAP_SYS_ADMIN -- --restore --keep-caps "$keep" --deny-setns
  rfb=$TASKS/$b/rootfs
  expect_eq "B's init waits, no child" "" "$(must ctr t exec --exec-id p0 "$b" cat /proc/1/task/1/children)"
  # staged as the proxy stages: .kata-cr/<name>, both 0700
  must install -d -m 700 "$rfb/.kata-cr" "$rfb/.kata-cr/img"
  must cp -a "$d/img/." "$rfb/.kata-cr/img/"
  out=$(must ctl restore --id "$b" --rootfs "$rfb" --image-dir img) || exit 1
  log=$(awk '/^criu_log_path:/ {print $2}' <<<"$out")
  info "criu command: $(cat "$(dirname "$log")/command" 2>/dev/null)"
  out=$(must ctr t exec --exec-id ps "$b" ps -o pid,ppid,args) || exit 1
  grep -qE '^ *1 +0 +/dev/.kata-cr-init --restore' <<<"$out" || fail "the init is not PID 1: $out"
  grep -qE "^ *$apid +1 +sh -c" <<<"$out" || fail "the restored sh does not have A's pid ($apid) as a child of 1: $out"
  expect_exec_counting "$b" /tmp/c
  # exec joins the restored workload's mount namespace: its tmpfs
  expect_exec_counting "$b" /dev/shm/c
  out=$(must ctr t exec --exec-id caps "$b" grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/1/status) || exit 1
  grep -q "^CapEff:.$keep" <<<"$out" || fail "the init does not keep exactly A's capabilities: $out"
  local m
  for m in $(awk '/^Cap/ {print $2}' <<<"$out"); do
    [ $(( 0x$m >> 21 & 1 )) = 0 ] || fail "the init kept CAP_SYS_ADMIN: $out"
  done
  grep -q '^Seccomp:.2' <<<"$out" || fail "the init runs without the setns-denying filter: $out"
  [ ! -e "$rfb/.kata-cr/img" ] || fail "staged images left"
  must ctr t kill -s TERM "$b"
  wait_status "$b" STOPPED
  poll 5 grep -q "/tasks/exit.*\"$b\"" "$ev" || fail "no TaskExit for $b"
  expect_eq "B's exit status after TERM (the workload's trap)" 42 "$(exit_of "$ev" "$b")"
}

t_failed_restore_ends_init() {
  local d=$E2E_CASE_DIR c rfc ev
  c=$(uid c); ev=$d/events
  events_start "$ev"
  run_init_container "$c" --cap-add CAP_SYS_ADMIN -- --restore --keep-caps 0
  rfc=$TASKS/$c/rootfs
  must install -d -m 700 "$rfc/.kata-cr" "$rfc/.kata-cr/bad"
  echo garbage >"$rfc/.kata-cr/bad/inventory.img"
  ctl restore --id "$c" --rootfs "$rfc" --image-dir bad 2>"$d/e" && fail "restore from garbage succeeded"
  grep -q "FAILED_PRECONDITION: criu restore failed" "$d/e" || fail "not FAILED_PRECONDITION with criu's error: $(head -c 600 "$d/e")"
  wait_status "$c" STOPPED
  poll 5 grep -q "/tasks/exit.*\"$c\"" "$ev" || fail "no TaskExit for $c"
  expect_eq "the waiting init's exit status" 125 "$(exit_of "$ev" "$c")"
  [ ! -e "$rfc/.kata-cr/bad" ] || fail "staged images left"
}

t_restore_refused_unless_waiting() {
  local d=$E2E_CASE_DIR id
  id=$(uid d)
  start_counting "$id"
  ctl restore --id "$id" --rootfs "$TASKS/$id/rootfs" --image-dir x 2>"$d/e" && fail "restore into a running init succeeded"
  grep -q "FAILED_PRECONDITION.*not in restore mode" "$d/e" || fail "not FAILED_PRECONDITION 'not in restore mode': $(cat "$d/e")"
  expect_counting "$id"
}

e2e_cases() {
  case_ "agent: socket 0600 in a 0700 dir; capabilities (api 2, criu 4.x, criu check)" t_socket_and_capabilities
  case_ "agent: checkpoint of a paused, then a running container (freezer, images, modes, log)" t_checkpoint_paused_and_running
  case_ "agent: refusals (existing dir, ../, unknown rootfs, symlinked .kata-cr)" t_checkpoint_refusals
  case_ "agent: criu failing mid-dump, criu missing: freezer state back, nothing partial" t_criu_failing_mid_dump
  case_ "agent: two checkpoints at once" t_concurrent_checkpoints
  case_ "agent: restore into an init waiting in restore mode (pid, tmpfs, caps, seccomp, exit)" t_restore_into_waiting_init
  case_ "agent: a failed restore ends the waiting init (125), nothing staged left" t_failed_restore_ends_init
  case_ "agent: restore refused into an init not in restore mode" t_restore_refused_unless_waiting
}

e2e_main
