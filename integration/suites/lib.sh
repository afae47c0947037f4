# shellcheck shell=bash
# integration/suites/lib.sh -- the tiny harness of kata-cr's end-to-end suites.
#
# A suite sources this file, defines case functions and a function e2e_cases that calls
#   case_ "NAME" FN        run FN as one case (own process, own dir, bounded time)
# and ends with `e2e_main`. Inside the bed: integration/testbed run -- integration/suites/run-all
# One suite, some cases: integration/testbed run -- env E2E_ONLY=tcp integration/suites/restore.sh
#
# Each case runs in its own bash process (the suite file is sourced again there, with
# E2E_IN_CASE=1) under `timeout`, so a hung command cannot stop the suite. Everything a
# case creates is registered (track_ctr, track_pod, track_pid) and removed by an EXIT
# trap in the case process and, again, by the runner after the case (idempotent), so the
# next case starts clean whatever happened. A failing case prints the failing command,
# its output and the case log; the suite goes on with the next case. The last line of a
# suite is exactly `e2e: N passed, N failed`; the exit status is non-zero if any failed.
# A case that needs a flow the bed lacks says so first (`needs FLOW`): it is
# then skipped, printed as SKIP with the reason and counted apart (`skipped: N ...`, the
# line before the last), never as a pass.
#
# Every check decides its case: a case fails if its process exits non-zero *or* if any
# check recorded a failure, so a check that fails inside a subshell (`$(must ...)`,
# `echo "$(helper)"`, a pipeline) still turns the case red although it only ended that
# subshell. (integration/suites/harness-test proves it on deliberately failing checks.)
#
# Checks (each records what failed and exits the case, or the scenario of run_both):
#   must CMD...            run CMD; on failure record CMD, its rc, stdout and stderr, exit
#   fail MSG               record MSG, exit
#   expect_eq WHAT WANT GOT
#   wait_for SECS CMD...   poll CMD (quietly) until it succeeds; after SECS seconds, fail
#                          naming CMD
#   needs FLOW             skip the case (with the reason) where the bed lacks FLOW:
#                          cri-checkpoint (CRI checkpoint and create-from-checkpoint, 2.x),
#                          checkpoint-options (checkpoint options reach a non-runc runtime:
#                          ctr t checkpoint --image-path/--exit, Tasks.Checkpoint image_path; 2.x),
#                          criu-ro-root (criu restores a read-only root read-only: criu >= 4.2),
#                          host-agent (the case drives or watches the host's kata-cr-agent and
#                          criu: not in the --kata bed, where they run in each Kata guest)
# Not a check:
#   poll SECS CMD...       wait_for's loop as a predicate (status 1 after SECS seconds),
#                          for `poll ... || fail "what it means"` and for cleanup
#   uid NAME               a unique id for this run, case and runtime ($RT)
#   info MSG               a line printed under the case's result (pass or fail)
#   run_both SCENARIO      A/B: SCENARIO with RT=$E2E_REF (runc; kata in the --kata bed), then
#                          RT=kata-cr; normalized outputs must be equal and both runs must succeed
#   run_cr SCENARIO        a checkpoint/restore scenario: run_both where the reference runtime
#                          can checkpoint (runc); in the --kata bed kata-cr alone, the table
#                          showing vanilla Kata's answer to a checkpoint (kata_cr_answer)
#   run_vs_runc SCENARIO   run_both against runc in either bed: for a scenario whose reference
#                          is runc's own output (its checkpoint formats), which vanilla Kata
#                          cannot give; in the --kata bed runc runs on the host beside Kata
#   on_kata                true in the --kata bed (kata-cr in front of the real Kata shim)
#   rt_ctr / rt_cri        the runtime name of $RT for ctr (--runtime) / crictl (runp)
#   c_run_d ID CMD...      ctr run -d with $RT, tracked; c_status ID; wait_status ID S [SECS]
#   events_start FILE / events_stop / events_of FILE ID   ctr events, per container
#   proxies_of ID / runc_shims_of ID / inner_shims_of ID   pids of the kata-cr proxy / runc
#                          shim / inner shim (runc or Kata) serving ID
#   pod_json NAME FILE / ctr_json NAME FILE [SH]   crictl configs (host-network pod)
#   pod_json_net NAME FILE  a pod with a network namespace of its own (the bed's CNI)
#   put_file PATH CONTENT   write a file for the case only (put back afterwards)
#   cri_state ID / wait_cri_state ID STATE
set -u

E2E_LIB=$(readlink -f "${BASH_SOURCE[0]}")
# shellcheck disable=SC2034 # for the suites
E2E_SUITES_DIR=$(dirname "$E2E_LIB")
IMG=${E2E_IMAGE:-localhost:5000/busybox:latest}
CTR_NS=${E2E_CTR_NS:-default}
CRI_NS=k8s.io
# (a case on the real Kata boots VMs under TCG: minutes on a busy 2-core machine)
if [ -n "${KATA_CR_KATA:-}" ]; then E2E_CASE_TIMEOUT=${E2E_CASE_TIMEOUT:-600}; fi
E2E_CASE_TIMEOUT=${E2E_CASE_TIMEOUT:-150}
# How long a task started in the background may take to show RUNNING: on Kata its VM
# boots first (5-30 s under TCG, more on a busy machine; the shim's State waits meanwhile).
if [ -n "${KATA_CR_KATA:-}" ]; then E2E_TASK_UP_SECS=${E2E_TASK_UP_SECS:-180}; fi
E2E_TASK_UP_SECS=${E2E_TASK_UP_SECS:-15}
# The A/B pair: vanilla runc and kata-cr in front of containerd-shim-runc-v2 in the plain
# bed; vanilla Kata and kata-cr in front of that same Kata shim in the --kata bed.
if [ -n "${KATA_CR_KATA:-}" ]; then E2E_RUNTIMES=(kata kata-cr); else E2E_RUNTIMES=(runc kata-cr); fi
E2E_REF=${E2E_RUNTIMES[0]}
on_kata() { [ -n "${KATA_CR_KATA:-}" ]; }
# Detached ctr containers on Kata get no stdio: the Kata shim keeps a blocking open of a
# task's stdin fifo pending, and once a detached ctr has gone nobody opens the other end
# (vanilla Kata alike). The plain bed keeps ctr's default.
E2E_DETACHED_IO=()
if [ -n "${KATA_CR_KATA:-}" ]; then E2E_DETACHED_IO=(--null-io); fi
# ctr t exec with a stdin at EOF (the cases run on /dev/null) sends CloseIO as soon as it
# has read it, which may reach the shim before the exec's Start: the Kata shim's CloseIO
# then waits, holding its service lock, for a stdin copy that Start (blocked on that
# lock) would begin: exec and every later call hang (seen with vanilla Kata under load;
# the Kata shim's goroutines: CloseIO in chan receive, Wait in Mutex.Lock). On Kata an
# exec whose stdin is not a pipe gets one that ends only after a while.
if [ -n "${KATA_CR_KATA:-}" ]; then
  ctr() {
    local a prev="" is_exec=""
    for a in "$@"; do
      case "$prev:$a" in t:exec|task:exec|tasks:exec) is_exec=1; break ;; esac
      prev=$a
    done
    if [ -n "$is_exec" ] && [ ! -p /dev/stdin ]; then
      command ctr "$@" < <(sleep 20)
    else
      command ctr "$@"
    fi
  }
fi
# Rows of the A/B table (run-all prints it): suite, case, reference, kata-cr.
E2E_TABLE=${E2E_TABLE:-}
# shellcheck disable=SC2034 # for the suites
CONTAINERD_SOCK=${CONTAINERD_ADDRESS:-/run/containerd/containerd.sock}
export CONTAINERD_NAMESPACE=$CTR_NS
# a workload that runs until SIGTERM, then exits 42 (works as pid 1: it has a handler)
LOOP_TERM42='trap "exit 42" TERM; while :; do sleep 0.1; done'

if [ -z "${E2E_IN_CASE:-}" ]; then
  # one per suite run: short, so that ids stay readable; exported to the case processes
  E2E_RUN_ID=$(printf '%x%x' "$(date +%s)" "$$" | tail -c 8)
  E2E_WORK=${E2E_WORK:-/tmp/e2e-$E2E_RUN_ID}
  export E2E_RUN_ID E2E_WORK
  mkdir -p "$E2E_WORK"
  # crictl gives each call 2 s by default (as crictl 1.36); checkpoints and restores
  # take longer here (a restore the bed's agent gives up on takes its 30 s, more on a
  # loaded machine). The suites' crictl gets 120 s, as an operator's
  # /etc/crictl.yaml would give it.
  if [ -z "${CRI_CONFIG_FILE:-}" ]; then
    printf 'timeout: 120\n' >"$E2E_WORK/crictl.yaml"
    export CRI_CONFIG_FILE=$E2E_WORK/crictl.yaml
  fi
fi
E2E_PASSED=0
E2E_FAILED=0
E2E_SKIPPED=0
E2E_SKIPPED_NAMES=()
E2E_FAILED_NAMES=()
E2E_NCASE=0

# ------------------------------------------------------------------ inside a case
_record() { # _record TEXT...: append to the case's failure record (and show it in the log)
  printf '%s\n' "$@" | tee -a "$E2E_CASE_DIR/failure" >&2
}

fail() {
  _record "FAIL${RT:+ [$RT]}: $*"
  exit 1
}

must() {
  local o e rc
  o=$(mktemp "$E2E_CASE_DIR/must.XXXXXX") e=$(mktemp "$E2E_CASE_DIR/must.XXXXXX")
  "$@" >"$o" 2>"$e"
  rc=$?
  if [ "$rc" != 0 ]; then
    _record "FAILED COMMAND${RT:+ [$RT]}: $(printf '%q ' "$@")(exit $rc)" \
      "  stdout: $(head -c 2000 "$o" | sed '2,$s/^/          /')" \
      "  stderr: $(head -c 2000 "$e" | sed '2,$s/^/          /')"
    rm -f "$o" "$e"
    exit 1
  fi
  cat "$o"; cat "$e" >&2
  rm -f "$o" "$e"
}

expect_eq() { # expect_eq WHAT WANT GOT
  [ "$2" = "$3" ] || fail "$1: want '$2', got '$3'"
}

poll() { # poll SECS CMD...: 0 once CMD succeeds, 1 if it has not within SECS seconds
  local secs=$1; shift
  local end=$((SECONDS + secs))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.1
  done
}

wait_for() { # wait_for SECS CMD...: a check; fails the case if CMD has not succeeded in time
  poll "$@" || fail "timed out after $1 s waiting for: ${*:2}"
}

info() { printf '%s\n' "$*" >>"$E2E_CASE_DIR/info"; printf 'info: %s\n' "$*" >&2; }

# ------------------------------------------------------------------ containerd versions
# The bed runs containerd 2.x or 1.7 (integration/testbed, KATA_CR_CONTAINERD). The flows
# only some versions have, and why a case that needs one cannot run elsewhere: the
# README's compatibility table says the same.
E2E_CONTAINERD_VERSION=${E2E_CONTAINERD_VERSION:-$(containerd --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1)}
E2E_CRIU_VERSION=${E2E_CRIU_VERSION:-$(criu --version 2>/dev/null | sed -n 's/^Version: *//p')}
export E2E_CONTAINERD_VERSION E2E_CRIU_VERSION
# criu 4.2 restores the root mount's flags (criu issue #2632); before, a read-only root
# comes back writable
criu_keeps_ro_root() {
  local v=${E2E_CRIU_VERSION:-0} ma mi
  ma=${v%%.*} mi=${v#*.}; mi=${mi%%[!0-9]*}
  [ "${ma:-0}" -gt 4 ] || { [ "${ma:-0}" = 4 ] && [ "${mi:-0}" -ge 2 ]; }
}
E2E_EXIT_SKIP=77
skip() { # skip REASON: end the case as skipped (not passed), saying why
  printf '%s\n' "$*" >"$E2E_CASE_DIR/skipped"
  exit "$E2E_EXIT_SKIP"
}
needs() { # needs FLOW (first thing in a case function, outside run_both)
  local v=${E2E_CONTAINERD_VERSION:-} why=""
  [ -n "$v" ] || fail "needs $1: the bed's containerd version is unknown (containerd --version)"
  case "$1" in
    cri-checkpoint)
      [ "${v%%.*}" -ge 2 ] \
        || why="containerd $v has no CRI checkpoint/restore (CheckpointContainer and create-from-checkpoint came with 2.x)" ;;
    checkpoint-options)
      [ "${v%%.*}" -ge 2 ] \
        || why="containerd $v hands checkpoint options (ctr t checkpoint --image-path/--exit, Tasks.Checkpoint's image_path) to runc runtimes only: a kata-cr task gets none, and containerd picks the image path itself" ;;
    runc-rich-checkpoint)
      [ "${v%%.*}" -ge 2 ] \
        || why="on containerd $v (Debian trixie's runc and criu) runc itself fails to checkpoint this workload (a TCP server, a tmpfs buffer: 'criu failed: type NOTIFY' from runc), so there is no A/B; kata-cr's checkpoint and restore of it are A/B-tested on the 2.x bed" ;;
    criu-ro-root)
      criu_keeps_ro_root \
        || why="criu ${E2E_CRIU_VERSION:-?} restores a read-only root writable (criu issue #2632, fixed in 4.2): runc's restored container could write its root, and kata-cr refuses such a restore (the kata-cr case on old criu checks that)" ;;
    host-agent)
      ! on_kata \
        || why="drives or watches kata-cr-agent and its criu on the host (ctl on its socket, its processes, the freezer and rootfs mounts of host containers); in the --kata bed they run in each Kata guest, where checkpoint.sh and restore.sh reach them through kata-cr; the plain bed runs this case" ;;
    *) fail "needs: unknown flow '$1'" ;;
  esac
  [ -z "$why" ] || skip "$why"
}

uid() { # uid NAME -> e2e-RUNID-CASENO-RT-NAME
  printf 'e2e-%s-%s-%s-%s' "$E2E_RUN_ID" "$E2E_CASE_NO" "${RT:-x}" "$1"
}

rt_ctr() {
  case "${RT:?RT not set}" in
    runc) echo io.containerd.runc.v2 ;;
    kata) echo io.containerd.kata.v2 ;;
    kata-cr) echo io.containerd.kata-cr.v2 ;;
    *) echo "unknown runtime $RT" >&2; return 1 ;;
  esac
}
rt_cri() { echo "${RT:?RT not set}"; }
# Processes the runtime adds to every container: kata-cr-init, PID 1 under kata-cr
# (a designed difference: README, "Designed differences").
rt_extra_procs() { if [ "${RT:?RT not set}" = kata-cr ]; then echo 1; else echo 0; fi; }
# ... and to `ctr t ps`: Kata's remote hypervisor answers Pids with its shim's pid alone
# (Kata's own doing, the same under both), so there kata-cr-init does not show.
rt_extra_ps() { if on_kata; then echo 0; else rt_extra_procs; fi; }

track_ctr() { echo "ctr ${2:-$CTR_NS} $1" >>"$E2E_CASE_DIR/cleanup"; }
track_ctr_at() { echo "ctr-at $1 $2" >>"$E2E_CASE_DIR/cleanup"; } # ADDRESS ID (namespace default)
# track_daemon PID DIR: a daemon the case started, stopped after everything else, then
# whatever it mounted under DIR unmounted and DIR removed
track_daemon() { echo "daemon $1 $2" >>"$E2E_CASE_DIR/cleanup"; }
track_pod() { echo "pod $CRI_NS $1" >>"$E2E_CASE_DIR/cleanup"; }
track_pid() { echo "pid - $1" >>"$E2E_CASE_DIR/cleanup"; }
# put_file PATH CONTENT: write PATH for the case; it is put back as it was (or removed)
# when the case ends
# The bed's agent, stopped and started again as the bed started it (its arguments,
# e.g. its --restore-timeout, saved by stop_agent): later suites rely on them.
stop_agent() {
  local pid; pid=$(pgrep -x kata-cr-agent) || fail "no kata-cr-agent running"
  must cp "/proc/$pid/cmdline" "$E2E_CASE_DIR/agent.cmdline"
  must kill "$pid"
  wait_for 5 eval '! pgrep -x kata-cr-agent >/dev/null'
}
restart_agent() {
  pgrep -x kata-cr-agent >/dev/null && return 0
  local argv=()
  mapfile -d '' argv <"$E2E_CASE_DIR/agent.cmdline"
  [ "${#argv[@]}" -gt 0 ] || argv=(kata-cr-agent --listen "unix://${AGENT_SOCK:-/run/kata-cr/agent.sock}")
  setsid "${argv[@]}" </dev/null >>"${KATA_CR_BED_LOG_DIR:-/tmp}/kata-cr-agent.log" 2>&1 &
  poll 10 test -S "${AGENT_SOCK:-/run/kata-cr/agent.sock}" || fail "kata-cr-agent did not come back"
}

put_file() {
  local b; b=$E2E_CASE_DIR/saved.$(printf '%s' "$1" | sha256sum | cut -c1-12)
  if ! grep -qF "file $b " "$E2E_CASE_DIR/cleanup" 2>/dev/null; then
    if [ -e "$1" ]; then cp -a "$1" "$b"; else rm -f "$b"; fi
    echo "file $b $1" >>"$E2E_CASE_DIR/cleanup"
  fi
  mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" >"$1"
}

c_run_d() { # c_run_d ID CMD... (ctr run -d with the runtime of $RT)
  local id=$1; shift
  track_ctr "$id"
  must ctr run -d "${E2E_DETACHED_IO[@]}" --runtime "$(rt_ctr)" "$IMG" "$id" "$@" >/dev/null
}
c_status() { ctr t ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
_status_is() { [ "$(c_status "$1")" = "$2" ]; }
wait_status() { # wait_status ID STATUS [SECS]
  poll "${3:-10}" _status_is "$1" "$2" || fail "task $1: status '$(c_status "$1")', want $2 within ${3:-10}s"
}

# Normalize what differs between any two runs whatever the runtime: our ids, containerd's
# generated ids, pids, timestamps, fifo dirs and the runtime's own name.
normalize() {
  sed -E \
    -e "s/e2e-${E2E_RUN_ID}-[0-9]+-(runc|kata-cr|kata)-/ID:/g" \
    -e 's/io\.containerd\.(runc|kata-cr|kata)\.v2/<runtime>/g' \
    -e 's/[0-9a-f]{64}/<hex64>/g' \
    -e 's/time="[^"]*"/time=<ts>/g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.]+( ?(Z|[+-][0-9:]+))?( UTC)?/<ts>/g' \
    -e 's/"(pid|exited_at|seconds|nanos)": ?[0-9]+/"\1":<n>/g' \
    -e 's#/run/containerd/fifo/[0-9]+#/run/containerd/fifo/<n>#g'
}

run_both() { # run_both SCENARIO
  local scn=$1 rt rc ok=1 d=$E2E_CASE_DIR
  for rt in "${E2E_RUNTIMES[@]}"; do
    ( RT=$rt; "$scn" ) >"$d/raw.$rt" 2>"$d/err.$rt"
    rc=$?
    echo "$rc" >"$d/rc.$rt"
    normalize <"$d/raw.$rt" >"$d/out.$rt"
    if [ "$rc" != 0 ]; then
      ok=0
      _record "A/B [$rt]: scenario $scn failed (exit $rc); its stderr (last 25 lines):"
      tail -n 25 "$d/err.$rt" | sed 's/^/    /' | tee -a "$d/failure" >&2
    fi
  done
  local ref=$E2E_REF
  if ! diff -u --label "$ref" --label "kata-cr" "$d/out.$ref" "$d/out.kata-cr" >"$d/ab.diff"; then
    ok=0
    _record "A/B DIFFERENCE in $scn (normalized output, $ref vs kata-cr):"
    sed 's/^/    /' "$d/ab.diff" | tee -a "$d/failure" >&2
    echo "differs" >"$d/ab.kata-cr"
  fi
  [ "$(cat "$d/rc.$ref")" = 0 ] && echo "ok" >"$d/ab.$ref" || echo "FAILED" >"$d/ab.$ref"
  [ -s "$d/ab.kata-cr" ] || { [ "$(cat "$d/rc.kata-cr")" = 0 ] && echo "ok, same as $ref" || echo "FAILED"; } >"$d/ab.kata-cr"
  echo "--- $scn: normalized output ($ref)" >&2
  sed 's/^/    /' "$d/out.$ref" >&2
  [ "$ok" = 1 ] || exit 1
  info "A/B equal ($(wc -l <"$d/out.$ref") observations, $ref and kata-cr)"
}

# What vanilla Kata answers to a checkpoint (it has none): asked once per bed run, on a
# container of its own, and shown in the A/B table's kata column of every C/R case.
kata_cr_answer() {
  local f=/tmp/e2e-kata-checkpoint-answer id out
  if [ ! -s "$f" ]; then
    id=e2e-$E2E_RUN_ID-kata-answer
    ctr run -d --null-io --runtime io.containerd.kata.v2 "$IMG" "$id" sleep 1000 >/dev/null 2>&1
    if out=$(ctr t checkpoint --image-path "/tmp/$id" "$id" 2>&1); then
      out="checkpoint succeeded (?)"
    fi
    ctr t rm -f "$id" >/dev/null 2>&1; ctr c rm "$id" >/dev/null 2>&1
    printf '%s\n' "refused: ${out#ctr: }" | head -n 1 >"$f"
  fi
  cat "$f"
}

run_cr() { # run_cr SCENARIO: a checkpoint/restore scenario (see the header)
  if ! on_kata; then run_both "$1"; return; fi
  local scn=$1 d=$E2E_CASE_DIR rc
  kata_cr_answer >"$d/ab.kata"
  ( RT=kata-cr; "$scn" ) >"$d/raw.kata-cr" 2>"$d/err.kata-cr"
  rc=$?
  normalize <"$d/raw.kata-cr" >"$d/out.kata-cr"
  echo "--- $scn: normalized output (kata-cr on Kata)" >&2
  sed 's/^/    /' "$d/out.kata-cr" >&2
  if [ "$rc" != 0 ]; then
    echo "FAILED" >"$d/ab.kata-cr"
    _record "[kata-cr] scenario $scn failed (exit $rc); its stderr (last 25 lines):"
    tail -n 25 "$d/err.kata-cr" | sed 's/^/    /' | tee -a "$d/failure" >&2
    exit 1
  fi
  echo "ok" >"$d/ab.kata-cr"
  info "kata-cr on Kata: $(wc -l <"$d/out.kata-cr") observations; vanilla Kata: $(cat "$d/ab.kata")"
}

run_vs_runc() { # run_vs_runc SCENARIO (see the header)
  if ! on_kata; then run_both "$1"; return; fi
  local d=$E2E_CASE_DIR rc
  # run_both exits the case on a failure: in a subshell, so that the table row is written
  ( E2E_RUNTIMES=(runc kata-cr) E2E_REF=runc; run_both "$1" )
  rc=$?
  echo "runc (host): $(cat "$d/ab.runc" 2>/dev/null || echo '?')" >"$d/ab.kata"
  [ "$rc" = 0 ] || exit "$rc"
}

_kill_bg() {
  local p=$1
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null
  poll 3 eval "! kill -0 $p" || kill -KILL "$p" 2>/dev/null
  true
}

e2e_cleanup() { # remove what the case registered (idempotent; used in the case and after it)
  local f=$E2E_CASE_DIR/cleanup kind ns id
  [ -f "$f" ] || return 0
  # background processes first (they may hold tasks), then pods, then containers
  while read -r kind ns id; do [ "$kind" = pid ] && _kill_bg "$id"; done <"$f"
  while read -r kind ns id; do
    [ "$kind" = file ] || continue
    if [ -e "$ns" ]; then cp -a "$ns" "$id"; else rm -f "$id"; fi
  done <"$f"
  while read -r kind ns id; do
    [ "$kind" = pod ] || continue
    timeout 30 crictl rmp -f "$id" >/dev/null 2>&1 || true
  done <"$f"
  local c
  while read -r kind ns id; do
    case "$kind" in
      ctr) c=(ctr -n "$ns") ;;
      ctr-at) c=(ctr --address "$ns" -n default) ;;
      *) continue ;;
    esac
    "${c[@]}" c info "$id" >/dev/null 2>&1 || continue
    timeout 10 "${c[@]}" t resume "$id" >/dev/null 2>&1 || true
    timeout 10 "${c[@]}" t kill -a -s KILL "$id" >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
      st=$("${c[@]}" t ls 2>/dev/null | awk -v id="$id" '$1 == id {print $3}')
      [ -z "$st" ] || [ "$st" = STOPPED ] && break
      sleep 0.1
    done
    timeout 10 "${c[@]}" t delete -f "$id" >/dev/null 2>&1 || true
    timeout 10 "${c[@]}" c rm "$id" >/dev/null 2>&1 || true
  done <"$f"
  while read -r kind ns id; do
    [ "$kind" = daemon ] || continue
    _kill_bg "$ns"
    awk -v d="$id" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r \
      | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf --one-file-system "$id" 2>/dev/null
  done <"$f"
}

e2e_case_main() { # (in the case process) e2e_case_main FN
  trap 'e2e_cleanup' EXIT
  "$1"
}

# ------------------------------------------------------------------ shared helpers (ctr events, processes, CRI)
events_start() { # events_start FILE: ctr events into FILE, returns once it is subscribed
  local f=$1 marker
  ctr events >"$f" 2>&1 &
  EVENTS_PID=$!
  track_pid "$EVENTS_PID"
  # prove the subscription: an image tag makes an event; wait until it shows up
  marker=localhost:5000/e2e-marker:$(uid ev)
  for _ in $(seq 1 50); do
    ctr images tag --force "$IMG" "$marker" >/dev/null 2>&1
    grep -q "e2e-marker" "$f" && break
    sleep 0.1
  done
  ctr images rm "$marker" >/dev/null 2>&1
  grep -q "e2e-marker" "$f" || fail "ctr events never subscribed: $(head -c 500 "$f")"
}
events_stop() { kill "$EVENTS_PID" 2>/dev/null; wait "$EVENTS_PID" 2>/dev/null; true; }

# /tasks/delete is left out on purpose: the shim publishes TaskDelete asynchronously and
# a runc shim that exits right after deleting its last task often never delivers it (seen
# with plain runc: present after one `ctr t delete`, absent after the next). Comparing it
# would compare a race, not the runtimes.
events_of() { # events_of FILE ID: topic and exit status of the task events of ID, in order
  grep -F "\"$2\"" "$1" | sed -n 's#^.* \(/tasks/[a-z-]*\) \({.*\)$#\1 \2#p' | grep -v '^/tasks/delete ' \
    | while read -r topic json; do
        case "$topic" in
          /tasks/exit)
            printf '%s exit_status=%s id=%s\n' "$topic" "$(jq -r '.exit_status // 0' <<<"$json")" \
              "$(jq -r '.id // "-"' <<<"$json")" ;;
          /tasks/exec-added|/tasks/exec-started) printf '%s exec_id=%s\n' "$topic" "$(jq -r '.exec_id' <<<"$json")" ;;
          *) echo "$topic" ;;
        esac
      done
}

wait_line() { # wait_line SECS FILE TEXT
  poll "$1" grep -qF -- "$3" "$2" || fail "no '$3' in $2 within $1s: $(head -c 500 "$2")"
}

proxies_of() { # pids of kata-cr proxies serving ID (the __kata-cr-serve argument names the id)
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -F -- " __kata-cr-serve " | grep -qF -- "\"id\":\"$1\"" && echo "${p#/proc/}"
  done
  true
}
kata_shims_of() { # pids of containerd-shim-kata-v2 servers whose -id is ID
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qE -- "^(/[^ ]*/)?containerd-shim-kata-v2 .*-id $1( |$)" && echo "${p#/proc/}"
  done
  true
}
inner_shims_of() { if on_kata; then kata_shims_of "$1"; else runc_shims_of "$1"; fi; }
runc_shims_of() { # pids of containerd-shim-runc-v2 servers whose -id is ID
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qE -- "^(/[^ ]*/)?containerd-shim-runc-v2 .*-id $1( |$)" && echo "${p#/proc/}"
  done
  true
}
count() { grep -c . || true; }

pod_json() { # pod_json NAME FILE: a host-network pod
  jq -n --arg n "$1" --arg u "$1-uid" --arg d "$E2E_CASE_DIR/logs-$1" \
    '{metadata: {name: $n, namespace: "e2e", uid: $u, attempt: 0}, log_directory: $d,
      linux: {security_context: {namespace_options: {network: 2}}}}' >"$2"
}
pod_json_net() { # pod_json_net NAME FILE: a pod on the bed's pod network (10.99.0.0/24)
  jq -n --arg n "$1" --arg u "$1-uid" --arg d "$E2E_CASE_DIR/logs-$1" \
    '{metadata: {name: $n, namespace: "e2e", uid: $u, attempt: 0}, log_directory: $d,
      linux: {security_context: {namespace_options: {network: 0}}}}' >"$2"
}
# The container settings kubelet sends by default: a pid namespace of its own
# (CRI's enum default, 0, would share the pod's).
CRI_CONTAINER_PID=1
ctr_json() { # ctr_json NAME FILE [SH_SCRIPT]: a busybox container running sh -c SH_SCRIPT
  jq -n --arg n "$1" --arg c "${3:-$LOOP_TERM42}" --argjson pid "$CRI_CONTAINER_PID" \
    '{metadata: {name: $n, attempt: 0}, image: {image: "localhost:5000/busybox:latest"},
      command: ["sh", "-c", $c], log_path: ($n + ".log"),
      linux: {security_context: {namespace_options: {pid: $pid}}}}' >"$2"
}
cri_state() { crictl inspect "$1" 2>/dev/null | jq -r '.status.state'; }
_cri_state_is() { [ "$(cri_state "$1")" = "$2" ]; }
wait_cri_state() { # wait_cri_state ID STATE
  poll 15 _cri_state_is "$1" "$2" || fail "container $1: state '$(cri_state "$1")', want $2"
}

# ------------------------------------------------------------------ the runner
case_() { # case_ NAME FN (E2E_ONLY=REGEX: only the cases whose FN matches)
  local name=$1 fn=$2 rc t0 dir
  if [ -n "${E2E_ONLY:-}" ] && ! [[ $fn =~ $E2E_ONLY ]]; then return 0; fi
  E2E_NCASE=$((E2E_NCASE + 1))
  dir=$E2E_WORK/$(basename "$E2E_SUITE" .sh)/$(printf '%02d' "$E2E_NCASE")-$fn
  rm -rf "$dir"; mkdir -p "$dir"
  t0=$SECONDS
  local clog=${KATA_CR_BED_LOG_DIR:-/var/log/kata-cr-bed}/containerd.log off=0
  [ -f "$clog" ] && off=$(stat -c %s "$clog")
  # shellcheck disable=SC2016 # the case process expands them
  E2E_IN_CASE=1 E2E_CASE_DIR=$dir E2E_CASE_NO=$E2E_NCASE \
    timeout -k 5 "$E2E_CASE_TIMEOUT" bash -c 'source "$1"; e2e_case_main "$2"' _ "$E2E_SUITE" "$fn" \
    >"$dir/log" 2>&1 </dev/null
  rc=$?
  # belt and braces: the case's own trap may not have run (timeout, crash)
  E2E_CASE_DIR=$dir e2e_cleanup >>"$dir/log" 2>&1
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "TIMEOUT: case exceeded ${E2E_CASE_TIMEOUT}s" >>"$dir/failure"
  fi
  # A skip is a skip only if no check failed before it.
  if [ "$rc" = "$E2E_EXIT_SKIP" ] && [ -s "$dir/skipped" ] && ! [ -s "$dir/failure" ]; then
    E2E_SKIPPED=$((E2E_SKIPPED + 1))
    E2E_SKIPPED_NAMES+=("$name")
    printf 'SKIP  %-58s %3ss\n' "$name" "$((SECONDS - t0))"
    sed 's/^/      - skipped: /' "$dir/skipped"
    return 0
  fi
  # A check that failed in a subshell ended only that subshell: its record decides.
  if [ "$rc" = 0 ] && [ -s "$dir/failure" ]; then
    rc=1
    sed -i '1i (the case exited 0, but a check inside it failed in a subshell)' "$dir/failure"
  fi
  if [ "$rc" = 0 ]; then
    E2E_PASSED=$((E2E_PASSED + 1))
    printf 'PASS  %-58s %3ss\n' "$name" "$((SECONDS - t0))"
  else
    E2E_FAILED=$((E2E_FAILED + 1))
    E2E_FAILED_NAMES+=("$name")
    printf 'FAIL  %-58s %3ss (exit %s)\n' "$name" "$((SECONDS - t0))" "$rc"
    if [ -s "$dir/failure" ]; then
      sed 's/^/      | /' "$dir/failure"
    else
      echo "      | no failure recorded; last lines of the case log:"
      tail -n 30 "$dir/log" | sed 's/^/      | /'
    fi
    # what containerd logged (warnings and errors) while the case ran
    if [ -f "$clog" ]; then
      tail -c +"$((off + 1))" "$clog" >"$dir/containerd.log"
      if grep -qE 'level=(warning|error|fatal)' "$dir/containerd.log"; then
        echo "      | containerd.log during the case (warnings/errors, last 12):"
        grep -E 'level=(warning|error|fatal)' "$dir/containerd.log" | tail -n 12 | cut -c1-400 | sed 's/^/      |   /'
      fi
    fi
    echo "      | full log: $dir/log"
  fi
  [ -s "$dir/info" ] && sed 's/^/      - /' "$dir/info"
  if [ -n "$E2E_TABLE" ]; then # case, reference runtime, kata-cr
    local refcol kcol
    refcol=$(cat "$dir/ab.$E2E_REF" 2>/dev/null || echo "-")
    if [ "$rc" = 0 ]; then kcol=$(cat "$dir/ab.kata-cr" 2>/dev/null || echo "ok"); else kcol="FAILED"; fi
    printf '%s\t%s\t%s\t%s\n' "$(basename "$E2E_SUITE" .sh)" "$name" "$refcol" "$kcol" >>"$E2E_TABLE"
  fi
  return 0
}

e2e_main() { # the last line of a suite
  [ -n "${E2E_IN_CASE:-}" ] && return 0
  E2E_SUITE=$(readlink -f "$0")
  echo "== $(basename "$E2E_SUITE"): run $E2E_RUN_ID, work dir $E2E_WORK"
  e2e_cases
  if [ "$E2E_FAILED" -gt 0 ]; then
    echo "failed: $(printf '%s; ' "${E2E_FAILED_NAMES[@]}")"
  fi
  if [ "$E2E_SKIPPED" -gt 0 ]; then
    echo "skipped: $E2E_SKIPPED (containerd $E2E_CONTAINERD_VERSION, criu ${E2E_CRIU_VERSION:-?}): $(printf '%s; ' "${E2E_SKIPPED_NAMES[@]}")"
  fi
  echo "e2e: $E2E_PASSED passed, $E2E_FAILED failed"
  [ "$E2E_FAILED" = 0 ]
  exit
}
