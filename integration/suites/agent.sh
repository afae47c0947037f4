#!/usr/bin/env bash
# kata-cr-agent on its own, through `kata-cr-agent ctl` (host mode, runc containers
# that run kata-cr-init as PID 1 as the proxy would make them): what the proxy's
# suites cannot see from outside. Written for API version 3 (issue 9): the agent names
# each checkpoint's image directory itself (<rootfs>/.kata-cr-<32 random hex>, 0700)
# and removes it on ReleaseImages; restores read sets staged the way the proxy stages
# them (<upperdir>/.kata-cr-<hex>, 0700). Its socket's modes; Checkpoint of a paused
# and of a running container (freezer state kept, the image set's files, name and
# modes, criu's log kept outside the rootfs, ReleaseImages); bad input and names the
# container planted (never followed, never in the way); criu failing mid-dump (the
# freezer state put back, no partial image set, criu's first error and where its log
# is); a missing criu (named with its path); two checkpoints at once; Restore into a
# container whose init waits in restore mode (capabilities, the setns filter, the
# restored workload's pid and tmpfs, exit status), a failed restore ending the init
# (125) with nothing staged left, and Restore into an init that is not waiting.
#   integration/testbed run -- integration/suites/agent.sh
# Host mode by nature: in the --kata bed every case is skipped (`needs host-agent`), as
# there kata-cr's agent runs in each Kata guest, where checkpoint.sh and restore.sh reach
# it; an image set dumped in a guest (whose containers share the guest's network) is not
# one a host container with a network namespace of its own may restore anyway.
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

# The agent's image directory names (API 3): .kata-cr- and 32 lowercase hex digits.
PRIVATE_RE='^\.kata-cr-[0-9a-f]{32}$'
field() { sed -n "s/^$1: //p" <<<"$2" | head -n 1; } # field NAME CTL-OUTPUT
agent_dirs() { # agent_dirs DIR: entries at DIR's top named as the agent names image dirs
  local n
  for n in "$1"/.kata-cr-*; do
    [ -e "$n" ] || [ -L "$n" ] || continue
    n=${n##*/}
    [[ $n =~ $PRIVATE_RE ]] && echo "$n"
  done
  true
}
upperdir_of() { # upperdir_of ID: the upperdir of a ctr container's rootfs overlay
  awk -v m="$TASKS/$1/rootfs" '$5 == m {print}' /proc/self/mountinfo | grep -o 'upperdir=[^,]*' | cut -d= -f2
}
# no_image_dirs ID: neither the container's view nor its upperdir (what a rootfs diff
# carries) holds an image directory of the agent's, other than the names in $2...
no_image_dirs() {
  local id=$1 up left; shift
  up=$(upperdir_of "$id")
  [ -n "$up" ] || fail "$id: no upperdir found for its rootfs"
  left=$( { agent_dirs "$TASKS/$id/rootfs"; agent_dirs "$up"; } | sort -u | grep -vxF -f <(printf '%s\n' / "$@"))
  [ -z "$left" ] || fail "$id: image directories left in the rootfs: $left"
}
# checkpoint_ok OUT ROOTFS: the reply names a fresh private dir holding the image set
checkpoint_ok() {
  local out=$1 rf=$2 name
  name=$(field image_dir "$out")
  [[ $name =~ $PRIVATE_RE ]] || fail "image_dir is not .kata-cr-<32 hex digits>: '$name' in: $out"
  expect_eq "image_dir_path" "$rf/$name" "$(field image_dir_path "$out")"
  expect_eq "image dir: type, mode, owner" "directory 700 0" "$(stat -c '%F %a %u' "$rf/$name")"
  local f
  for f in inventory.img pstree.img; do
    [ -s "$rf/$name/$f" ] || fail "no $f in the image set $rf/$name"
  done
  compgen -G "$rf/$name/pages-*.img" >/dev/null || fail "no pages-*.img in $rf/$name"
  expect_eq "files: in the reply, and in the directory" \
    "$(cd "$rf/$name" && LC_ALL=C ls | tr '\n' ' ' | sed 's/ $//')" "$(field files "$out")"
}

# ------------------------------------------------------------------ checkpoint
t_socket_and_capabilities() {
  needs host-agent
  local caps
  expect_eq "socket mode, then its directory's" 600700 "$(stat -c %a "$SOCK")$(stat -c %a "$(dirname "$SOCK")")"
  caps=$(must ctl capabilities) || exit 1
  info "$(tr '\n' ' ' <<<"$caps")"
  # the version this tree's kata-cr-api declares (the proxy refuses older agents by it)
  local want
  want=$(sed -n 's/^pub const API_VERSION: u32 = \([0-9]*\);/\1/p' "$E2E_SUITES_DIR/../../agent-ext/api/src/lib.rs")
  [ -n "$want" ] || fail "no API_VERSION in agent-ext/api/src/lib.rs"
  grep -qx "api_version: $want" <<<"$caps" || fail "capabilities: not api_version $want: $caps"
  grep -q '^criu_version: 4\.' <<<"$caps" || fail "capabilities: not criu 4.x: $caps"
  grep -qx 'criu_check_ok: true' <<<"$caps" || fail "capabilities: criu check does not pass: $caps"
}

t_checkpoint_paused_and_running() {
  needs host-agent
  local id rf out log name name2
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  must ctr t pause "$id"
  expect_eq "freezer before" FROZEN "$(freezer_state "$id")"
  out=$(must ctl checkpoint --id "$id" --rootfs "$rf") || exit 1
  expect_eq "freezer after a checkpoint of a paused container" FROZEN "$(freezer_state "$id")"
  must ctr t resume "$id"
  checkpoint_ok "$out" "$rf"
  name=$(field image_dir "$out")
  compgen -G "$rf/$name/tmpfs-dev-*.tar.gz.img" >/dev/null || fail "/dev/shm (tmpfs) not saved"
  [ ! -e "$rf/.kata-cr" ] && [ ! -L "$rf/.kata-cr" ] || fail "the agent made the old fixed /.kata-cr"
  expect_counting "$id"
  log=$(field criu_log_path "$out")
  [ -n "$log" ] || fail "no criu_log_path in: $out"
  [[ $log != "$rf"* ]] || fail "criu's log is in the rootfs: $log"
  grep -q "Dumping finished successfully" "$log" || fail "criu's log $log does not say the dump finished"
  info "image dir $name; criu command: $(cat "$(dirname "$log")/command")"
  # ReleaseImages removes it (through the agent's view: the upperdir loses it too)
  out=$(must ctl release --id "$id" --rootfs "$rf" --image-dir "$name") || exit 1
  expect_eq "release of $name" "removed: true" "$out"
  [ ! -e "$rf/$name" ] || fail "$rf/$name still there after ReleaseImages"
  out=$(must ctl release --id "$id" --rootfs "$rf" --image-dir "$name") || exit 1
  expect_eq "second release of $name" "removed: false" "$out"
  # a running (not paused) container: thawed afterwards, another unpredictable name
  out=$(must ctl checkpoint --id "$id" --rootfs "$rf") || exit 1
  expect_eq "freezer after a checkpoint of a running container" THAWED "$(freezer_state "$id")"
  checkpoint_ok "$out" "$rf"
  name2=$(field image_dir "$out")
  [ "$name2" != "$name" ] || fail "two checkpoints got the same directory name $name"
  must ctl release --id "$id" --rootfs "$rf" --image-dir "$name2" >/dev/null
  no_image_dirs "$id"
  expect_counting "$id"
}

t_checkpoint_refusals() {
  needs host-agent
  local id rf err d=$E2E_CASE_DIR out name zero=.kata-cr-00000000000000000000000000000000
  local file=.kata-cr-ffffffffffffffffffffffffffffffff fifo=.kata-cr-0123456789abcdef0123456789abcdef
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  # bad input, named in the error
  mkdir -p "$d/not-a-container"
  ctl checkpoint --id nope --rootfs "$d/not-a-container" 2>"$d/e" && fail "a rootfs with no container accepted"
  grep -q "NOT_FOUND.*$d/not-a-container" "$d/e" || fail "unknown rootfs: not NOT_FOUND naming it: $(cat "$d/e")"
  ctl checkpoint --id "$id" --rootfs rel/rootfs 2>"$d/e" && fail "a relative rootfs accepted"
  grep -q 'INVALID_ARGUMENT.*rel/rootfs' "$d/e" || fail "relative rootfs: not INVALID_ARGUMENT naming it: $(cat "$d/e")"
  expect_eq "entries the refused calls made in $d/not-a-container" "" "$(ls -A "$d/not-a-container")"
  # What the container's root plants, from inside: the old fixed name and names of
  # the agent's pattern, as symlinks to a host directory, a file, a fifo.
  mkdir -p "$d/outside" && echo host >"$d/outside/marker"
  must ctr t exec --exec-id plant "$id" sh -c \
    "ln -s $d/outside /.kata-cr && ln -s $d/outside /$zero && echo x > /$file && mkfifo /$fifo"
  out=$(must ctl checkpoint --id "$id" --rootfs "$rf") || exit 1
  checkpoint_ok "$out" "$rf"
  name=$(field image_dir "$out")
  expect_eq "the host directory behind the planted symlinks" marker "$(ls -A "$d/outside")"
  expect_eq "what was planted, after the checkpoint" \
    "symbolic link $d/outside|symbolic link $d/outside|regular file x|fifo" \
    "$(stat -c '%F' "$rf/.kata-cr") $(readlink "$rf/.kata-cr")|$(stat -c '%F' "$rf/$zero") $(readlink "$rf/$zero")|$(stat -c '%F' "$rf/$file") $(cat "$rf/$file")|$(stat -c '%F' "$rf/$fifo")"
  # ReleaseImages takes only names of the agent's pattern and follows nothing planted
  # under one
  local bad
  for bad in ../evil .kata-cr ckpt-1 "$zero" "$file" "$fifo"; do
    ctl release --id "$id" --rootfs "$rf" --image-dir "$bad" 2>"$d/e" && fail "release of '$bad' succeeded"
    grep -q "INVALID_ARGUMENT.*${bad//./\\.}" "$d/e" || fail "release of '$bad': not INVALID_ARGUMENT naming it: $(cat "$d/e")"
  done
  expect_eq "the host directory after the refused releases" marker "$(ls -A "$d/outside")"
  [ -L "$rf/$zero" ] && [ -f "$rf/$file" ] && [ -p "$rf/$fifo" ] || fail "a refused release removed what was planted: $(ls -lA "$rf")"
  expect_eq "release of $name" "removed: true" "$(must ctl release --id "$id" --rootfs "$rf" --image-dir "$name")"
  no_image_dirs "$id" "$zero" "$file" "$fifo"
  expect_counting "$id"
}

t_criu_failing_mid_dump() {
  needs host-agent
  local id rf d=$E2E_CASE_DIR
  id=$(uid c2); rf=$TASKS/$id/rootfs
  start_counting "$id"
  # criu with an action script that fails at post-dump
  printf '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] && { echo "forced failure at post-dump" >&2; exit 1; }\nexit 0\n' >"$d/fail-post-dump"
  printf '#!/bin/sh\nexec criu "$@" --action-script %s\n' "$d/fail-post-dump" >"$d/criu-failing"
  chmod +x "$d/fail-post-dump" "$d/criu-failing"
  agent_at "$d/bad" --criu "$d/criu-failing" --work-dir "$d/work"
  must ctr t pause "$id"
  CTL_ADDR=unix://$d/bad/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" 2>"$d/e" \
    && fail "checkpoint with a failing criu succeeded"
  info "$(head -c 400 "$d/e")"
  grep -q "FAILED_PRECONDITION: criu dump failed.*Error (" "$d/e" || fail "not FAILED_PRECONDITION with criu's first error: $(head -c 600 "$d/e")"
  ! grep -q "criu dump failed.*rlimit" "$d/e" || fail "the summary is the rlimit error criu ignores"
  grep -q -- "--- full log: $d/work/" "$d/e" || fail "no log tail and log path: $(head -c 600 "$d/e")"
  no_image_dirs "$id"
  expect_eq "freezer after the failure (paused before)" FROZEN "$(freezer_state "$id")"
  must ctr t resume "$id"
  expect_counting "$id"
  # the same failure on a running container: thawed, not frozen
  CTL_ADDR=unix://$d/bad/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" 2>/dev/null \
    && fail "checkpoint with a failing criu succeeded"
  expect_eq "freezer after the failure (running before)" THAWED "$(freezer_state "$id")"
  no_image_dirs "$id"
  expect_counting "$id"
  # a criu that does not exist: the error names criu and the path it looked for
  # (not the agent's pidns-exec helper, which would exec it), paused or running
  agent_at "$d/none" --criu /nonexistent/criu --work-dir "$d/work2"
  must ctr t pause "$id"
  CTL_ADDR=unix://$d/none/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" 2>"$d/e" \
    && fail "checkpoint without criu succeeded"
  info "$(head -c 300 "$d/e")"
  grep -q "FAILED_PRECONDITION: criu not found: /nonexistent/criu: no such file" "$d/e" \
    || fail "missing criu: not FAILED_PRECONDITION naming criu's path: $(cat "$d/e")"
  ! grep -q "pidns-exec" "$d/e" || fail "missing criu: the error names the helper: $(cat "$d/e")"
  expect_eq "freezer after the missing criu (paused before)" FROZEN "$(freezer_state "$id")"
  must ctr t resume "$id"
  CTL_ADDR=unix://$d/none/agent.sock ctl checkpoint --id "$id" --rootfs "$rf" 2>"$d/e" \
    && fail "checkpoint without criu succeeded"
  grep -q "FAILED_PRECONDITION: criu not found: /nonexistent/criu" "$d/e" || fail "missing criu (running): $(cat "$d/e")"
  expect_eq "freezer after the missing criu (running before)" THAWED "$(freezer_state "$id")"
  no_image_dirs "$id"
  expect_counting "$id"
}

t_concurrent_checkpoints() {
  needs host-agent
  local id rf d=$E2E_CASE_DIR p1 r1 r2 n names=()
  id=$(uid c1); rf=$TASKS/$id/rootfs
  start_counting "$id"
  ctl checkpoint --id "$id" --rootfs "$rf" >"$d/o1" 2>"$d/e1" &
  p1=$!
  ctl checkpoint --id "$id" --rootfs "$rf" >"$d/o2" 2>"$d/e2" && r2=0 || r2=$?
  wait "$p1" && r1=0 || r1=$?
  info "first: exit $r1 $(head -c 200 "$d/e1"); second: exit $r2 $(head -c 200 "$d/e2")"
  [ "$r1" = 0 ] || [ "$r2" = 0 ] || fail "neither checkpoint succeeded"
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    grep -q "ABORTED.*already in progress" "$d/e1" "$d/e2" || fail "the refused one is not ABORTED 'already in progress'"
  fi
  for n in 1 2; do
    [ -s "$d/o$n" ] || continue
    checkpoint_ok "$(cat "$d/o$n")" "$rf"
    names+=("$(field image_dir "$(cat "$d/o$n")")")
  done
  [ "${#names[@]}" != 2 ] || [ "${names[0]}" != "${names[1]}" ] || fail "both checkpoints got ${names[0]}"
  expect_eq "freezer after" THAWED "$(freezer_state "$id")"
  for n in "${names[@]}"; do
    expect_eq "release of $n" "removed: true" "$(must ctl release --id "$id" --rootfs "$rf" --image-dir "$n")"
  done
  no_image_dirs "$id"
  expect_counting "$id"
}

# ------------------------------------------------------------------ restore
# A kata-cr container A, checkpointed with ctr; B made by hand as the proxy makes a
# restoring container: runc, the init in restore mode keeping A's capabilities,
# denying setns, CAP_SYS_ADMIN lent; the image set staged as the proxy stages it.
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
# stage_like_proxy SRC ID: copies the image set SRC into a fresh
# <upperdir>/.kata-cr-<32 random hex> of ID's rootfs, mode 0700, regular files only, as
# the proxy stages a restore; prints the name
stage_like_proxy() {
  local up name
  up=$(upperdir_of "$2")
  [ -n "$up" ] || fail "$2: no upperdir found for its rootfs"
  name=.kata-cr-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
  must install -d -m 700 "$up/$name"
  must find "$1" -maxdepth 1 -type f -exec cp -t "$up/$name/" {} +
  echo "$name"
}
t_restore_into_waiting_init() {
  needs host-agent
  local d=$E2E_CASE_DIR a b keep apid rfb ev out log name
  a=$(uid a); b=$(uid b); ev=$d/events
  events_start "$ev"
  read -r keep apid < <(checkpoint_a "$a" "$d/img") || exit 1
  [ -n "$apid" ] || exit 1
  info "A's capabilities (kept by B's init): $keep; A's workload: pid $apid"
  run_init_container "$b" --cap-add CAP_SYS_ADMIN -- --restore --keep-caps "$keep" --deny-setns
  rfb=$TASKS/$b/rootfs
  expect_eq "B's init waits, no child" "" "$(must ctr t exec --exec-id p0 "$b" cat /proc/1/task/1/children)"
  name=$(stage_like_proxy "$d/img" "$b") || exit 1
  expect_eq "the staged set as the agent sees it: type, mode" "directory 700" "$(stat -c '%F %a' "$rfb/$name")"
  out=$(must ctl restore --id "$b" --rootfs "$rfb" --image-dir "$name") || exit 1
  log=$(field criu_log_path "$out")
  info "staged as $name; criu command: $(cat "$(dirname "$log")/command" 2>/dev/null)"
  expect_eq "the restored workload's pid (reply)" "$apid" "$(field pid "$out")"
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
  no_image_dirs "$b"
  must ctr t kill -s TERM "$b"
  wait_status "$b" STOPPED
  poll 5 grep -q "/tasks/exit.*\"$b\"" "$ev" || fail "no TaskExit for $b"
  expect_eq "B's exit status after TERM (the workload's trap)" 42 "$(exit_of "$ev" "$b")"
}

# restore_fails ID NAME WANT [CTL_ADDR]: a restore of the staged NAME into ID's waiting
# init fails with an error matching WANT, the init exits 125, nothing staged is left
restore_fails() {
  local id=$1 name=$2 want=$3 ev=$E2E_CASE_DIR/events.$1 e=$E2E_CASE_DIR/e.$1
  CTL_ADDR=${4:-} ctl restore --id "$id" --rootfs "$TASKS/$id/rootfs" --image-dir "$name" 2>"$e" \
    && fail "restore of $name into $id succeeded"
  info "$id: $(head -c 300 "$e")"
  grep -qE "$want" "$e" || fail "restore into $id: not /$want/: $(head -c 800 "$e")"
  wait_status "$id" STOPPED
  poll 5 grep -q "/tasks/exit.*\"$id\"" "$ev" || fail "no TaskExit for $id"
  expect_eq "$id: the waiting init's exit status" 125 "$(exit_of "$ev" "$id")"
  no_image_dirs "$id"
}
t_failed_restore_ends_init() {
  needs host-agent
  local d=$E2E_CASE_DIR c1 c2 keep apid name
  c1=$(uid c1); c2=$(uid c2)
  # an image set kata-cr's checks refuse before criu sees it
  events_start "$d/events.$c1"
  run_init_container "$c1" --cap-add CAP_SYS_ADMIN -- --restore --keep-caps 0
  mkdir -p "$d/garbage" && echo garbage >"$d/garbage/inventory.img"
  name=$(stage_like_proxy "$d/garbage" "$c1") || exit 1
  restore_fails "$c1" "$name" "INVALID_ARGUMENT: .*$name/inventory\.img"
  events_stop
  # a real image set, and criu failing in the middle of the restore
  read -r keep apid < <(checkpoint_a "$(uid a)" "$d/img") || exit 1
  [ -n "$apid" ] || exit 1
  printf '#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = pre-restore ] && { echo "forced failure at pre-restore" >&2; exit 1; }\nexit 0\n' >"$d/fail-pre-restore"
  printf '#!/bin/sh\nexec criu "$@" --action-script %s\n' "$d/fail-pre-restore" >"$d/criu-failing"
  chmod +x "$d/fail-pre-restore" "$d/criu-failing"
  agent_at "$d/bad" --criu "$d/criu-failing" --work-dir "$d/work"
  events_start "$d/events.$c2"
  run_init_container "$c2" --cap-add CAP_SYS_ADMIN -- --restore --keep-caps "$keep" --deny-setns
  name=$(stage_like_proxy "$d/img" "$c2") || exit 1
  restore_fails "$c2" "$name" "FAILED_PRECONDITION: criu restore failed.*Error \(" "unix://$d/bad/agent.sock"
  grep -q -- "--- full log: $d/work/" "$d/e.$c2" || fail "no log tail and log path: $(head -c 600 "$d/e.$c2")"
}

t_restore_refused_unless_waiting() {
  needs host-agent
  local d=$E2E_CASE_DIR id rf
  id=$(uid d); rf=$TASKS/$id/rootfs
  start_counting "$id"
  ctl restore --id "$id" --rootfs "$rf" --image-dir .kata-cr-00000000000000000000000000000000 2>"$d/e" \
    && fail "restore into a running init succeeded"
  grep -q "FAILED_PRECONDITION.*not in restore mode" "$d/e" || fail "not FAILED_PRECONDITION 'not in restore mode': $(cat "$d/e")"
  ctl restore --id "$id" --rootfs "$rf" --image-dir ../evil 2>"$d/e" && fail "restore from ../evil succeeded"
  grep -q 'INVALID_ARGUMENT.*\.\./evil' "$d/e" || fail "image dir ../evil: not INVALID_ARGUMENT naming it: $(cat "$d/e")"
  expect_counting "$id"
}

e2e_cases() {
  case_ "agent: socket 0600 in a 0700 dir; capabilities (api version of this tree, criu 4.x, criu check)" t_socket_and_capabilities
  case_ "agent: checkpoint of a paused, then a running container (freezer, private dir, log, release)" t_checkpoint_paused_and_running
  case_ "agent: bad input refused; planted names neither followed nor in the way" t_checkpoint_refusals
  case_ "agent: criu failing mid-dump, criu missing (named): freezer state back, nothing partial" t_criu_failing_mid_dump
  case_ "agent: two checkpoints at once" t_concurrent_checkpoints
  case_ "agent: restore from a set staged as the proxy does (pid, tmpfs, caps, seccomp, exit)" t_restore_into_waiting_init
  case_ "agent: a refused or failed restore ends the waiting init (125), nothing staged left" t_failed_restore_ends_init
  case_ "agent: restore refused into an init not in restore mode" t_restore_refused_unless_waiting
}

e2e_main
