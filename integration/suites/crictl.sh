#!/usr/bin/env bash
# The project's crictl (integration/crictl) against containerd in the bed, written as
# scripts for the real crictl (1.36) are: its commands, flags, outputs and exit
# statuses; then one case per behaviour where it used to differ from the real one
# (issue 13), each asserting what crictl 1.36 does (cri-tools' cmd/crictl, read for
# each): a non-zero exec exit, stdin with -i, a terminal with -it, a checkpoint
# archive path that does not exist, the 2 s default time limit, no pull on create,
# rm removing logs, rmp refusing a ready pod. The pods run under runc: crictl is
# what is tested.
#   integration/testbed run -- integration/suites/crictl.sh
# shellcheck disable=SC2016 # $ in single quotes is for the container's shell
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

# A pod (host network) with one counting container, started: sets POD and CTR.
pod_with_counter() {
  local d=$E2E_CASE_DIR
  RT=runc
  pod_json "$(uid pod)" "$d/pod.json"
  jq -n '{metadata: {name: "counter"}, image: {image: "localhost:5000/busybox:latest"},
      command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.2; done"],
      envs: [{key: "FOO", value: "bar"}], log_path: "counter.log",
      linux: {security_context: {namespace_options: {pid: 1}}}}' >"$d/ctr.json"
  POD=$(must crictl runp --runtime runc "$d/pod.json") || exit 1
  track_pod "$POD"
  CTR=$(must crictl create "$POD" "$d/ctr.json" "$d/pod.json") || exit 1
  must crictl start "$CTR" >/dev/null
  wait_cri_state "$CTR" CONTAINER_RUNNING
}
# the logrus form crictl reports a fatal error in (stderr is not a terminal here)
is_fatal_line() { grep -qE '^time="[^"]+" level=fatal msg=' <<<"$1"; }

# ------------------------------------------------------------------ commands, outputs
t_lifecycle_and_listing() {
  local d=$E2E_CASE_DIR out
  pod_with_counter
  expect_eq "pods -q --name" "$POD" "$(must crictl pods -q --name "$(uid pod)")"
  must crictl inspectp "${POD:0:6}" | jq -e '.status.state == "SANDBOX_READY"' >/dev/null \
    || fail "inspectp of an id prefix"
  must crictl inspectp "$POD" | jq -e '.status.linux.namespaces.options.network == "NODE"' >/dev/null \
    || fail "inspectp: host network"
  must crictl inspectp -o yaml "$POD" | grep -q 'state: SANDBOX_READY' || fail "inspectp -o yaml"
  must crictl ps -a --pod "${POD:0:5}" --name 'count.*' -q | grep -qx "$CTR" || fail "ps filters"
  must crictl ps -o json | jq -e --arg c "$CTR" '.containers[] | select(.id == $c) | .state == "CONTAINER_RUNNING"' >/dev/null \
    || fail "ps -o json"
  out=$(must crictl ps)
  head -n 1 <<<"$out" | grep -q '^CONTAINER *IMAGE *CREATED *STATE *NAME *ATTEMPT *POD ID *POD *NAMESPACE$' \
    || fail "ps table header: $(head -n 1 <<<"$out")"
  must crictl inspect "$CTR" | jq -e '.status.state == "CONTAINER_RUNNING" and (.info.pid > 0)' >/dev/null \
    || fail "inspect"
  [ "$(must crictl inspect -o go-template --template '{{.info.pid}}' "$CTR")" -gt 0 ] || fail "inspect go-template"
  must crictl inspect "$CTR" | jq -e '.status.startedAt | test("^20[0-9][0-9]-.*Z$")' >/dev/null || fail "startedAt"
  must crictl inspect -q "$CTR" | jq -e '(.info == null) and .status.state == "CONTAINER_RUNNING"' >/dev/null \
    || fail "inspect -q"
  must crictl inspect "$CTR" "$CTR" | jq -e 'length == 2' >/dev/null || fail "inspect of two ids"
  must crictl images | grep -q '^localhost:5000/busybox *latest ' || fail "images"
  must crictl version | grep -qx 'RuntimeName:  containerd' || fail "version"
  must crictl info | jq -e '.status.conditions | length > 0' >/dev/null || fail "info"
  expect_eq "stop prints the id" "$CTR" "$(must crictl stop -t 1 "$CTR")"
  wait_cri_state "$CTR" CONTAINER_EXITED
  expect_eq "rm prints the id" "$CTR" "$(must crictl rm "$CTR")"
  out=$(crictl inspect "$CTR" 2>&1) && fail "inspect of a removed container succeeded: $out"
  is_fatal_line "$out" || fail "inspect of a removed container: not crictl's fatal line: $out"
  expect_eq "stopp" "Stopped sandbox $POD" "$(must crictl stopp "$POD")"
  expect_eq "rmp" "Removed sandbox $POD" "$(must crictl rmp "$POD")"
  expect_eq "pods left" "" "$(must crictl pods -q --name "$(uid pod)")"
}

t_exec_logs_stats() {
  pod_with_counter
  poll 10 eval '[ -n "$(crictl exec -s "$CTR" cat /tmp/count 2>/dev/null)" ]' || fail "the counter never started"
  [ "$(must crictl exec --name counter -q cat /tmp/count)" -gt 0 ] || fail "exec with a filter"
  expect_eq "exec: the container's env" bar "$(must crictl exec "$CTR" sh -c 'echo $FOO')"
  # crictl's ExecSync prints stdout then stderr, each followed by a newline, on stdout
  expect_eq "exec -s output" "$(printf 'out\n\nerr\n')" "$(must crictl exec -s "$CTR" sh -c 'echo out; echo err >&2' 2>/dev/null)"
  wait_for 10 eval 'crictl logs "$CTR" | grep -qx "tick 2"'
  expect_eq "logs --tail 1: one line" 1 "$(must crictl logs --tail 1 "$CTR" | count)"
  must crictl stats -o json | jq -e --arg c "$CTR" '[.stats[] | select(.attributes.id == $c)] | length == 1' >/dev/null \
    || fail "stats -o json"
  must crictl stats | grep -q '^CONTAINER *NAME *CPU % *MEM' || fail "stats table"
  # logs -f follows until the container ends
  timeout 20 crictl logs -f "$CTR" >"$E2E_CASE_DIR/follow.log" 2>&1 &
  local follow=$!
  track_pid "$follow"
  must crictl stop -t 1 "$CTR" >/dev/null
  wait "$follow" || fail "logs -f did not end with the container (exit $?)"
  grep -q '^tick ' "$E2E_CASE_DIR/follow.log" || fail "logs -f printed nothing"
}

t_go_flag_forms() {
  local out
  pod_with_counter
  # single-dash long names, name=value, clustered shorts, as Go's flag package reads them
  expect_eq "-timeout 10s ps -aq" "$(must crictl ps -a -q | sort)" "$(must crictl -timeout 10s ps -aq | sort)"
  expect_eq "--name=value" "$CTR" "$(must crictl ps --name=counter -q)"
  expect_eq "-state=running" "$CTR" "$(must crictl ps -state=running -q --pod "$POD")"
  out=$(crictl ps --bogus 2>&1) && fail "an unknown flag was accepted: $out"
  true
}

# ------------------------------------------------------------------ issue 13: as crictl 1.36
t_exec_nonzero_exit() {
  local out rc
  pod_with_counter
  out=$(crictl exec "$CTR" sh -c 'echo out; echo err >&2; exit 3' 2>"$E2E_CASE_DIR/err") && rc=0 || rc=$?
  expect_eq "exec exit status for a command exiting 3" 1 "$rc"
  expect_eq "exec stdout" out "$out"
  grep -qx 'err' "$E2E_CASE_DIR/err" || fail "exec stderr lacks the command's: $(cat "$E2E_CASE_DIR/err")"
  grep -q "level=fatal msg=\"execing command in container $CTR: command terminated with exit code 3\"" "$E2E_CASE_DIR/err" \
    || fail "exec does not report the code as crictl does: $(cat "$E2E_CASE_DIR/err")"
  out=$(crictl exec -s "$CTR" sh -c 'echo out; echo err >&2; exit 3' 2>"$E2E_CASE_DIR/err") && rc=0 || rc=$?
  expect_eq "exec -s exit status for a command exiting 3" 1 "$rc"
  expect_eq "exec -s stdout after a failure (crictl prints none)" "" "$out"
  grep -q "execing command in container $CTR synchronously: command 'sh -c echo out; echo err >&2; exit 3' exited with 3: err" "$E2E_CASE_DIR/err" \
    || fail "exec -s does not report the code as crictl does: $(cat "$E2E_CASE_DIR/err")"
  out=$(crictl exec "$CTR" /no/such/binary 2>&1) && fail "exec of a missing binary succeeded: $out"
  info "exec of a missing binary: $out"
}

t_exec_stdin() {
  local out
  pod_with_counter
  expect_eq "echo hi | exec -i cat" hi "$(echo hi | must crictl exec -i "$CTR" cat)"
  # the end of stdin reaches the command: wc ends and counts
  expect_eq "3 lines | exec -i wc -l" 3 "$(printf 'a\nb\nc\n' | must crictl exec -i "$CTR" wc -l | tr -d ' ')"
  out=$(seq 1 20000 | must crictl exec -i "$CTR" md5sum)
  expect_eq "20000 lines through stdin" "$(seq 1 20000 | md5sum)" "$out"
  # without -i, stdin stays here (crictl gives the command none)
  expect_eq "echo hi | exec cat (no -i)" "" "$(echo hi | must crictl exec "$CTR" cat)"
}

t_exec_tty() {
  local out
  pod_with_counter
  # script(1) gives crictl a terminal
  out=$(script -qec "crictl exec -it $CTR sh -c 'tty; [ -t 0 ] && echo stdin-is-tty; [ -t 1 ] && echo stdout-is-tty; echo err >&2'" /dev/null </dev/null 2>&1 | tr -d '\r\0' | sed 's/\^@//g')
  info "exec -it: $(tr '\n' ' ' <<<"$out")"
  grep -q '^/dev/pts/[0-9]' <<<"$out" || fail "exec -it: no pty in the container: $out"
  grep -qx stdin-is-tty <<<"$out" || fail "exec -it: stdin is not a tty: $out"
  grep -qx stdout-is-tty <<<"$out" || fail "exec -it: stdout is not a tty: $out"
  grep -qx err <<<"$out" || fail "exec -it: stderr does not reach the terminal: $out"
  # crictl: -t needs -i, and -it needs a terminal on stdin
  out=$(crictl exec -t "$CTR" tty 2>&1 </dev/null) && fail "exec -t without -i succeeded: $out"
  grep -q 'tty=true must be specified with interactive=true' <<<"$out" || fail "exec -t without -i: $out"
  out=$(crictl exec -it "$CTR" tty 2>&1 </dev/null) && fail "exec -it without a terminal succeeded: $out"
  grep -q 'input is not a terminal' <<<"$out" || fail "exec -it without a terminal: $out"
}

t_create_missing_archive() {
  local d=$E2E_CASE_DIR out
  pod_with_counter
  jq '.image.image = "/nonexistent/checkpoint.tar" | .metadata.name = "restored"' "$d/ctr.json" >"$d/restore.json"
  out=$(crictl create "$POD" "$d/restore.json" "$d/pod.json" 2>&1) && fail "create from a missing archive succeeded: $out"
  info "create from a missing archive: $out"
  is_fatal_line "$out" || fail "not crictl's fatal line: $out"
  grep -q 'creating container: rpc error: code = ' <<<"$out" || fail "not containerd's error: $out"
  grep -qi 'not found\|no such file' <<<"$out" || fail "containerd's error does not say not found: $out"
  ! grep -qi 'invalid reference\|pull' <<<"$out" || fail "the path was taken for an image to pull: $out"
}

t_create_does_not_pull() {
  local d=$E2E_CASE_DIR out ref=localhost:5000/busybox:$(uid pull)
  pod_with_counter
  # an image in the registry, absent from CRI's store
  must ctr -n k8s.io images tag "$IMG" "$ref" >/dev/null
  must ctr -n k8s.io images push --plain-http "$ref" >/dev/null
  must ctr -n k8s.io images rm "$ref" >/dev/null
  jq --arg r "$ref" '.image.image = $r | .metadata.name = "pulled"' "$d/ctr.json" >"$d/c2.json"
  out=$(crictl create "$POD" "$d/c2.json" "$d/pod.json" 2>&1) && fail "create pulled an absent image without --with-pull: $out"
  info "create of an absent image: $out"
  must crictl create --with-pull "$POD" "$d/c2.json" "$d/pod.json" >/dev/null
  # (not crictl rmi: the tag shares its image with busybox:latest, which would go too)
  must ctr -n k8s.io images rm "$ref" >/dev/null
}

# A CRI endpoint that accepts connections and never answers: every call waits for
# crictl's time limit.
silent_endpoint() {
  python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(16)
held = []
while True:
    c, _ = s.accept(); held.append(c)
' "$1" &
  track_pid $!
  wait_for 5 test -S "$1"
}
took() { # took SECS_MIN SECS_MAX CMD...: CMD fails with a deadline error within the bounds
  local t0=$EPOCHREALTIME out el
  out=$("${@:3}" 2>&1) && fail "$* succeeded against a silent endpoint"
  el=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  info "${*:3}: failed after ${el}s: $(head -c 300 <<<"$out")"
  grep -q 'DeadlineExceeded\|deadline exceeded' <<<"$out" || fail "${*:3}: not a deadline error: $out"
  awk -v e="$el" -v lo="$1" -v hi="$2" 'BEGIN{exit !(e >= lo && e <= hi)}' \
    || fail "${*:3}: gave up after ${el}s, want ${1}-${2}s"
}
t_default_timeout() {
  local sock=$E2E_CASE_DIR/silent.sock
  silent_endpoint "$sock"
  # 2 s by default, as crictl on Linux
  # (the suites' own config file, with its longer limit, left out)
  took 1.8 4.5 env -u CRI_CONFIG_FILE crictl -r "unix://$sock" version
  took 1.8 4.5 env -u CRI_CONFIG_FILE crictl -r "unix://$sock" ps
  # --timeout, and the config file's timeout (seconds)
  took 3.8 6.5 env -u CRI_CONFIG_FILE crictl -r "unix://$sock" --timeout 4s version
  printf 'runtime-endpoint: unix://%s\ntimeout: 3\n' "$sock" >"$E2E_CASE_DIR/crictl.yaml"
  took 2.8 5.5 env -u CONTAINER_RUNTIME_ENDPOINT crictl --config "$E2E_CASE_DIR/crictl.yaml" version
  # a call the client gives no deadline: ExecSync without --timeout outlasts 2 s
  pod_with_counter
  expect_eq "exec -s of a 3 s command under the default timeout" done \
    "$(must env -u CRI_CONFIG_FILE crictl exec -s "$CTR" sh -c 'sleep 3; echo done')"
}

t_rm_removes_logs() {
  local d=$E2E_CASE_DIR log
  pod_with_counter
  log=$(must crictl inspect "$CTR" | jq -r .status.logPath)
  wait_for 10 test -s "$log"
  must crictl stop "$CTR" >/dev/null
  must crictl rm "$CTR" >/dev/null
  [ ! -e "$log" ] || fail "rm left the log file $log"
  # -k keeps it
  CTR=$(must crictl create "$POD" "$d/ctr.json" "$d/pod.json") || exit 1
  must crictl start "$CTR" >/dev/null
  wait_for 10 test -s "$log"
  must crictl rm -f -k "$CTR" >/dev/null
  [ -s "$log" ] || fail "rm -k removed the log file $log"
}

t_rmp_refuses_ready_pod() {
  local out
  pod_with_counter
  out=$(crictl rmp "$POD" 2>&1) && fail "rmp of a ready pod without -f succeeded: $out"
  grep -q "pod sandbox \\\\\"$POD\\\\\" is running, please stop it first" <<<"$out" || fail "rmp of a ready pod: $out"
  expect_eq "the pod after the refused rmp" SANDBOX_READY "$(must crictl inspectp "$POD" | jq -r .status.state)"
  expect_eq "rmp -f" "$(printf 'Stopped sandbox %s\nRemoved sandbox %s' "$POD" "$POD")" "$(must crictl rmp -f "$POD")"
}

e2e_cases() {
  case_ "crictl: runp/create/start/pods/ps/inspect(p)/images/version/info/stop/rm/stopp/rmp" t_lifecycle_and_listing
  case_ "crictl: exec (filter, env, -s output), logs (--tail, -f), stats" t_exec_logs_stats
  case_ "crictl: Go flag forms (-timeout, --name=value, -aq)" t_go_flag_forms
  case_ "crictl 1.36: a non-zero exec exit -> exit 1, the code in the error" t_exec_nonzero_exit
  case_ "crictl 1.36: exec -i passes stdin, its end closes the command's" t_exec_stdin
  case_ "crictl 1.36: exec -it gives a terminal (-t needs -i and a terminal)" t_exec_tty
  case_ "crictl 1.36: a missing archive path reaches containerd (not found)" t_create_missing_archive
  case_ "crictl 1.36: create does not pull unless --with-pull" t_create_does_not_pull
  case_ "crictl 1.36: 2 s default time limit (--timeout, config file)" t_default_timeout
  case_ "crictl 1.36: rm removes the log file unless -k" t_rm_removes_logs
  case_ "crictl 1.36: rmp refuses a ready pod without -f" t_rmp_refuses_ready_pod
}

e2e_main
