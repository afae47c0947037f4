#!/usr/bin/env bash
# integration/kubelet/scenario.sh -- the kubelet suite's scenario for one runtime, inside a
# bed that runs a kubelet (integration/kubelet/run starts one bed per runtime):
#   KATA_CR_KUBELET=1 KATA_CR_CRI_RUNTIME=kata-cr integration/testbed run -- integration/kubelet/scenario.sh
# Static pods get containerd's CRI default runtime (KATA_CR_CRI_RUNTIME): a static pod
# cannot name a RuntimeClass without an API server.
#
# What a Kubernetes user does, through the real kubelet: a counter pod; the kubelet's
# checkpoint API (POST /checkpoint/NS/POD/CONTAINER) while it runs; checkpointctl on the
# archive; an OCI checkpoint image built with buildah and pushed to the registry; a new
# static pod from that image that resumes the counter; a second checkpoint of the restored
# container; deleting the pods. Then a container the runtime may refuse to checkpoint, and
# the host's kernel settings before and after.
#
# Output on stdout, one line per check, for the A/B table:
#   row|KEY|PASS or FAIL|what was seen
# and the archive's shape for run's comparison with the other runtime's:
#   layout|ENTRY   (criu image names with their numbers as N)
#   meta|FILE|KEY-PATHS
# Diagnostics go to stderr. A check whose prerequisite failed is reported FAIL (not run).
set -u
RT=${KATA_CR_CRI_RUNTIME:-runc}
# How long a pod may take to run: on the real Kata bed each pod boots a qemu TCG guest
# (and a pod's VM to stop), and for a counter to be seen moving (two execs: each one is a
# round trip into a TCG guest there, seconds under load)
UP_SECS=90 GONE_SECS=60 MOVE_SECS=10
if [ -n "${KATA_CR_KATA:-}" ]; then UP_SECS=240 GONE_SECS=180 MOVE_SECS=60; fi
: "${KATA_CR_KUBELET_URL:?not in a bed with a kubelet (KATA_CR_KUBELET=1 integration/testbed run -- ...)}"
URL=$KATA_CR_KUBELET_URL MAN=$KATA_CR_KUBELET_MANIFESTS NODE=$KATA_CR_KUBELET_NODE
HOST_SYSCTL=$KATA_CR_HOST_SYSCTL
W=$(mktemp -d /tmp/kubelet-e2e.XXXXXX)
IMG=localhost:5000/busybox:latest
CKPT_REF=localhost:5000/kubelet-checkpoint:$RT-$(date +%s)
# In memory only: a counter that started again would start at 1. Written by rename, so
# that a reader never sees the file empty (truncated, not yet written).
COUNTER='i=0; trap "exit 0" TERM; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.2; done'
# A daemon that leaves the workload's process tree (double fork, its own session), beside a
# counter: runc dumps the whole container; kata-cr dumps only the command's tree.
DAEMON="(setsid sleep 100000 &); $COUNTER"
export CONTAINERD_NAMESPACE=k8s.io
# crictl gives each call 2 s by default (as crictl 1.36); stopping and removing pods
# can take longer here: 120 s, as an operator's /etc/crictl.yaml would give it
printf 'timeout: 120\n' >"$W/crictl.yaml"
export CRI_CONFIG_FILE=$W/crictl.yaml
FAILED=""   # the first failed step: later steps that need it are not run

say() { printf '[kubelet-e2e %s] %s\n' "$RT" "$*" >&2; }
ANY_FAIL=""
row() { # row KEY PASS|FAIL TEXT
  [ "$2" = PASS ] || ANY_FAIL=1
  # one line, ASCII (the table cuts cells by bytes): checkpointctl's "µs" becomes "us"
  printf 'row|%s|%s|%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\n|' ' /' | sed 's/µ/u/g' | cut -c1-300)"
  say "$2 $1: $3"
}
pass() { row "$1" PASS "$2"; }
fail() { row "$1" FAIL "$2"; [ -n "$FAILED" ] || FAILED=$1; }
needs() { # needs KEY: false (and the row reported) if an earlier step failed
  [ -z "$FAILED" ] && return 0
  row "$1" FAIL "not run: $FAILED failed"
  return 1
}

poll() { # poll SECS CMD...: 0 once CMD succeeds within SECS seconds
  local end=$((SECONDS + $1)); shift
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.2
  done
}

kapi() { # kapi METHOD PATH -> "STATUS SECONDS" on line 1, the body after it
  python3 - "$1" "$URL$2" <<'PY'
import ssl, sys, time, urllib.error, urllib.request
method, url = sys.argv[1], sys.argv[2]
# the kubelet's serving certificate is self-signed (a test bed on its own loopback)
ctx = ssl._create_unverified_context()
t0 = time.monotonic()
try:
    with urllib.request.urlopen(urllib.request.Request(url, method=method), context=ctx, timeout=120) as r:
        status, body = r.status, r.read().decode(errors="replace")
except urllib.error.HTTPError as e:
    status, body = e.code, e.read().decode(errors="replace")
except Exception as e:
    status, body = 0, repr(e)
print(status, "%.2f" % (time.monotonic() - t0))
print(body)
PY
}

static_pod() { # static_pod POD CONTAINER IMAGE [SCRIPT]: a manifest in the kubelet's directory
  local cmd=""
  [ -n "${4:-}" ] && cmd=$(printf '    command: ["sh", "-c", %s]\n' "$(jq -Rn --arg s "$4" '$s')")
  cat >"$W/$1.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $1
  namespace: default
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: $2
    image: $3
    imagePullPolicy: IfNotPresent
$cmd
EOF
  # whole or not at all: the kubelet reads every file but hidden ones as a manifest
  cp "$W/$1.yaml" "$MAN/.$1.yaml.tmp" && mv "$MAN/.$1.yaml.tmp" "$MAN/$1.yaml"
}
ctr_of() { # ctr_of POD: the id of the static pod's running container (one per pod here)
  crictl ps -q --state running --label "io.kubernetes.pod.name=$1-$NODE" 2>/dev/null | head -n 1
}
counter_of() { crictl exec -s "$1" cat /tmp/c 2>/dev/null; }
runtime_of() { ctr c info "$1" 2>/dev/null | jq -r '.Runtime.Name'; }
_running() { [ -n "$(ctr_of "$1")" ]; }
_is_int() { [[ ${1:-} =~ ^[0-9]+$ ]]; }
_counter_moves() { # _counter_moves CID: two reads 0.6 s apart, the second larger
  local a b
  a=$(counter_of "$1"); sleep 0.6; b=$(counter_of "$1")
  _is_int "$a" && _is_int "$b" && [ "$b" -gt "$a" ]
}

why_still() { # why_still CID: what reading its counter gives, and the pod's containers
  printf 'exec: %s; containers: %s' "$(crictl exec -s "$1" cat /tmp/c 2>&1 | head -c 200)" \
    "$(crictl ps -a 2>&1 | tail -n +2 | awk '{print $1, $(NF-4), $(NF-3)}' | tr '\n' ';')"
}

checkpoint() { # checkpoint POD CONTAINER -> sets CK_STATUS CK_SECS CK_BODY CK_ARCHIVE
  local out
  out=$(kapi POST "/checkpoint/default/$1-$NODE/$2?timeout=60")
  read -r CK_STATUS CK_SECS <<<"$(head -n 1 <<<"$out")"
  CK_BODY=$(tail -n +2 <<<"$out")
  CK_ARCHIVE=$(jq -r '.items[0] // empty' <<<"$CK_BODY" 2>/dev/null)
}

# The host's kernel settings: every /proc/sys value the bed shares with the host (net/ is
# the bed's own network namespace), as the host sees it (not through the bed's guards).
sysctl_snapshot() {
  (cd "$HOST_SYSCTL" && find . -path ./net -prune -o -type f -print | sort | while read -r f; do
    v=$(timeout 2 cat "$f" 2>/dev/null | tr '\n\t' '  ') || continue
    printf '%s=%s\n' "${f#./}" "$v"
  done)
}
# Values the kernel moves by itself (counters, random, the last pid).
SYSCTL_VOLATILE='^(fs/(dentry-state|inode-nr|inode-state|file-nr|aio-nr|quota/.*)|kernel/(random/.*|ns_last_pid|pty/nr|perf_event_max_sample_rate|tainted|.*_count|sched_domain/.*)|vm/stat_refresh)='

# ------------------------------------------------------------------ the steps
step_pod_up() {
  static_pod counter counter "$IMG" "$COUNTER"
  if ! poll "$UP_SECS" _running counter; then
    fail pod_up "no running container 'counter' in static pod counter-$NODE within 90 s: $(crictl pods 2>&1 | tail -n 3)"
    return
  fi
  CID=$(ctr_of counter)
  poll "$MOVE_SECS" _counter_moves "$CID" || { fail pod_up "container $CID runs but its counter does not move: $(why_still "$CID")"; return; }
  local rt; rt=$(runtime_of "$CID")
  case "$RT:$rt" in
    runc:io.containerd.runc.v2|kata-cr:io.containerd.kata-cr.v2) ;;
    *) fail pod_up "the pod's container runs under '$rt', want the CRI default runtime $RT"; return ;;
  esac
  pass pod_up "static pod counter-$NODE running under $rt, counter moving"
}

step_checkpoint_api() {
  needs checkpoint_api || return
  local before after
  before=$(counter_of "$CID")
  checkpoint counter counter
  if [ "$CK_STATUS" != 200 ] || [ -z "$CK_ARCHIVE" ] || ! [ -s "$CK_ARCHIVE" ]; then
    fail checkpoint_api "HTTP $CK_STATUS after ${CK_SECS}s: $(head -c 300 <<<"$CK_BODY")"; return
  fi
  ARCHIVE=$CK_ARCHIVE
  BEFORE=$before
  # the same container goes on: not restarted, counting
  local now; now=$(ctr_of counter)
  [ "$now" = "$CID" ] || { fail checkpoint_api "after the checkpoint the running container is '$now', was $CID"; return; }
  poll "$MOVE_SECS" _counter_moves "$CID" || { fail checkpoint_api "the counter stopped after the checkpoint"; return; }
  after=$(counter_of "$CID")
  pass checkpoint_api "HTTP 200 in ${CK_SECS}s, $(basename "$ARCHIVE") ($(du -k "$ARCHIVE" | cut -f1) KiB); still running, counter $before -> $after"
}

step_checkpointctl() {
  needs checkpointctl || return
  local show stats
  if ! show=$(checkpointctl show "$ARCHIVE" 2>&1); then fail checkpointctl "checkpointctl show: $show"; return; fi
  if ! stats=$(checkpointctl inspect --stats "$ARCHIVE" 2>&1); then fail checkpointctl "checkpointctl inspect --stats: $stats"; return; fi
  printf '%s\n' "$show" "$stats" >&2
  grep -qi "freezing time" <<<"$stats" || { fail checkpointctl "inspect --stats shows no dump statistics: $stats"; return; }
  # checkpointctl's CHECKPOINT SIZE is everything under checkpoint/: criu's images only
  local extra; extra=$(tar -tf "$ARCHIVE" | sed 's#^\./##' | grep -E '^checkpoint/(dump\.log|stats-dump)$' | tr '\n' ' ')
  [ -z "$extra" ] || { fail checkpointctl "criu's log/statistics inside checkpoint/ (counted as image size): $extra"; return; }
  pass checkpointctl "show and inspect --stats read it ($(grep -oi 'freezing time: .*' <<<"$stats" | head -n 1), $(grep -oi 'pages written: .*' <<<"$stats" | head -n 1))"
}

step_layout() { # the archive's shape, for the A/B comparison (run compares both runtimes')
  needs layout || return
  tar -tf "$ARCHIVE" >/dev/null 2>&1 && tar -xOf "$ARCHIVE" config.dump spec.dump status.dump >/dev/null 2>&1 \
    || { fail layout "$ARCHIVE is not a tar with config.dump, spec.dump and status.dump"; return; }
  tar -tf "$ARCHIVE" | sed -E 's#^\./##; /^$/d; s#/$##; s#-[0-9]+((\.tar\.gz)?\.img)$#-N\1#' \
    | sort -u | sed 's/^/layout|/'
  local f
  for f in config.dump spec.dump status.dump; do
    printf 'meta|%s|%s\n' "$f" "$(tar -xOf "$ARCHIVE" "$f" 2>/dev/null | jq -c '[paths | map(tostring) | join(".")] | map(select(test("^(annotations|labels|process\\.env|mounts)\\.") | not)) | sort' 2>/dev/null)"
  done
  pass layout "$(tar -tf "$ARCHIVE" | grep -vc '/$') entries (compared with the other runtime's in the table)"
}

step_image() {
  needs checkpoint_image || return
  local b out
  b=(buildah --storage-driver vfs --root "$W/buildah" --runroot "$W/buildah-run")
  # as the Kubernetes documentation builds one: from scratch, the archive added at /,
  # the checkpoint annotations (CRI-O's and containerd's), commit, push
  if ! out=$(set -e
      c=$("${b[@]}" from scratch)
      "${b[@]}" add "$c" "$ARCHIVE" / >/dev/null
      "${b[@]}" config --annotation=io.kubernetes.cri-o.annotations.checkpoint.name=counter \
        --annotation=org.criu.checkpoint.container.name=counter "$c" >/dev/null
      "${b[@]}" commit -q --format oci "$c" "$CKPT_REF" >/dev/null
      "${b[@]}" rm "$c" >/dev/null
      "${b[@]}" push -q --tls-verify=false "$CKPT_REF" "docker://$CKPT_REF" 2>&1
    ); then
    fail checkpoint_image "buildah: $out"; return
  fi
  "${b[@]}" rmi -a >/dev/null 2>&1
  pass checkpoint_image "buildah from scratch + add + commit, pushed $CKPT_REF"
}

step_restore() {
  needs restore || return
  # the user's move: the original pod goes, the checkpoint comes back as a new pod
  rm -f "$MAN/counter.yaml"
  poll 30 eval '[ -z "$(crictl ps -q --label io.kubernetes.pod.name=counter-'"$NODE"')" ]' \
    || { fail restore "the original pod's container still runs 30 s after its manifest went"; return; }
  # the container keeps its name; the pod's image is the checkpoint image
  static_pod counter-restored counter "$CKPT_REF"
  if ! poll "$UP_SECS" _running counter-restored; then
    fail restore "no running container in counter-restored-$NODE within $UP_SECS s: $(grep -iE 'checkpoint|restor' "$KATA_CR_BED_LOG_DIR/kubelet.log" | tail -n 3)"; return
  fi
  RCID=$(ctr_of counter-restored)
  local first
  # the first exec into a container that has just started can come before its counter
  # is readable through exec (seen once on the real Kata): a few tries
  poll 10 eval '_is_int "$(counter_of "$RCID")"'
  first=$(counter_of "$RCID")
  _is_int "$first" || { fail restore "no counter in the restored container $RCID: $(why_still "$RCID")"; return; }
  # The original counted on for a while after the checkpoint; the restored one goes on
  # from the checkpoint's value: never below what was read before it, never from 1.
  [ "$first" -ge "$BEFORE" ] || { fail restore "counter $first after the restore, $BEFORE before the checkpoint: started again"; return; }
  poll "$MOVE_SECS" _counter_moves "$RCID" || { fail restore "the restored counter does not move"; return; }
  grep -qF "Found checkpoint of container" "$KATA_CR_BED_LOG_DIR/containerd.log" \
    || { fail restore "containerd did not restore from an OCI checkpoint image (no 'Found checkpoint of container')"; return; }
  # the restored process lives in the new pod's uts and ipc namespaces, as under runc
  local wp pp n
  if [ -n "${KATA_CR_KATA:-}" ]; then
    # in the guest, out of the host's sight: the pod's namespaces are those Kata's agent
    # gave the container's PID 1 (kata-cr-init; pod containers share uts and ipc), the
    # restored workload is its child
    local seen
    seen=$(crictl exec -s "$RCID" sh -c 'w=$(cut -d" " -f1 /proc/1/task/1/children); for n in uts ipc; do [ -n "$w" ] && [ "$(readlink /proc/$w/ns/$n)" = "$(readlink /proc/1/ns/$n)" ] && echo "$n:same" || echo "$n:differs(${w:-no child})"; done' 2>&1 | tr '\n' ' ')
    [[ $seen == *uts:same* && $seen == *ipc:same* && $seen != *differs* ]] \
      || { fail restore "the restored process is not in the pod's uts and ipc namespaces (those of the container's PID 1): $seen"; return; }
    pass restore "pod counter-restored from $CKPT_REF under $(runtime_of "$RCID") on the real Kata: counter $BEFORE before the checkpoint, $first after the restore, moving; in the pod's uts and ipc namespaces (the container's PID 1's)"
    return
  fi
  pp=$(crictl inspectp "$(crictl pods -q --label "io.kubernetes.pod.name=counter-restored-$NODE" | head -n 1)" | jq -r '.info.pid')
  wp=$(for p in $(pgrep -f 'while :; do i='); do tr '\0' ' ' <"/proc/$p/cmdline" | grep -q '^sh -c' && echo "$p"; done | head -n 1)
  for n in uts ipc; do
    [ -n "$wp" ] && [ -n "$pp" ] && [ "$(readlink "/proc/$wp/ns/$n")" = "$(readlink "/proc/$pp/ns/$n")" ] \
      || { fail restore "the restored process (pid ${wp:-none}) is not in the pod's $n namespace (sandbox pid ${pp:-none})"; return; }
  done
  pass restore "pod counter-restored from $CKPT_REF under $(runtime_of "$RCID"): counter $BEFORE before the checkpoint, $first after the restore, moving; in the pod's uts and ipc namespaces"
}

step_second_checkpoint() {
  needs second_checkpoint || return
  checkpoint counter-restored counter
  if [ "$CK_STATUS" != 200 ] || [ -z "$CK_ARCHIVE" ] || ! [ -s "$CK_ARCHIVE" ]; then
    fail second_checkpoint "HTTP $CK_STATUS after ${CK_SECS}s: $(head -c 300 <<<"$CK_BODY")"; return
  fi
  poll "$MOVE_SECS" _counter_moves "$RCID" || { fail second_checkpoint "the restored container stopped counting after its checkpoint"; return; }
  checkpointctl inspect --stats "$CK_ARCHIVE" >/dev/null 2>&1 || { fail second_checkpoint "checkpointctl cannot read $CK_ARCHIVE"; return; }
  pass second_checkpoint "HTTP 200 in ${CK_SECS}s, checkpointctl reads it, still counting"
}

# A container this runtime may refuse to checkpoint: a daemon outside the command's tree.
step_refused() {
  static_pod daemon daemon "$IMG" "$DAEMON"
  poll "$UP_SECS" _running daemon || { row refused FAIL "the daemon pod never ran"; return; }
  local c; c=$(ctr_of daemon)
  poll "$MOVE_SECS" _counter_moves "$c" || { row refused FAIL "the daemon pod's counter does not move: $(why_still "$c")"; return; }
  checkpoint daemon daemon
  poll "$MOVE_SECS" _counter_moves "$c" && [ "$(ctr_of daemon)" = "$c" ] \
    || { row refused FAIL "the container stopped after the checkpoint request (HTTP $CK_STATUS)"; return; }
  case "$RT:$CK_STATUS" in
    runc:200) row refused PASS "runc dumps the whole container: HTTP 200, still running" ;;
    kata-cr:200) row refused FAIL "kata-cr checkpointed a container whose daemon is outside the workload's tree (it would be lost)" ;;
    kata-cr:*)
      local why; why=$(grep -o 'a process it left behind[^"]*kata-cr checkpoints only[^"]*' <<<"$CK_BODY" | head -c 200)
      if [ -n "$why" ]; then
        row refused PASS "HTTP $CK_STATUS naming the reason: $why; still running"
      else
        row refused FAIL "HTTP $CK_STATUS without the reason: $(head -c 300 <<<"$CK_BODY")"
      fi ;;
    *) row refused FAIL "HTTP $CK_STATUS: $(head -c 300 <<<"$CK_BODY")" ;;
  esac
}

step_delete() {
  needs delete || return
  rm -f "$MAN/counter-restored.yaml" "$MAN/daemon.yaml"
  _nothing_runs() {
    [ -z "$(crictl ps -q --state running)" ] && [ -z "$(crictl pods -q --state ready)" ] \
      && ! pgrep -f 'containerd-shim|while :; do i=|sleep 100000' >/dev/null \
      && ! grep -q ' /run/containerd/io.containerd.runtime.v2.task/k8s.io/' /proc/self/mountinfo \
      && [ -z "$(ls -A /var/lib/kubelet/pods 2>/dev/null)" ]
  }
  if ! poll "$GONE_SECS" _nothing_runs; then
    fail delete "$GONE_SECS s after the manifests went: running containers '$(crictl ps -q --state running | tr '\n' ' ')', ready pods '$(crictl pods -q --state ready | tr '\n' ' ')', processes '$(pgrep -af 'containerd-shim|while :; do i=|sleep 100000' | cut -c1-80 | tr '\n' ';')', task mounts $(grep -c ' /run/containerd/io.containerd.runtime.v2.task/k8s.io/' /proc/self/mountinfo), pod dirs '$(ls /var/lib/kubelet/pods 2>/dev/null | tr '\n' ' ')'"
    return
  fi
  # the kubelet removes dead sandboxes in its minute-long GC; an operator's rmp does too
  local p left
  for p in $(crictl pods -q); do crictl rmp -f "$p" >/dev/null 2>&1; done
  left=$(crictl ps -a -q | wc -l)
  [ "$left" = 0 ] && [ -z "$(crictl pods -q)" ] || { fail delete "after rmp: $left containers, pods '$(crictl pods -q | tr '\n' ' ')'"; return; }
  pass delete "no container, sandbox, shim, workload process, task mount or kubelet pod directory left"
}

step_host_sysctl() {
  sysctl_snapshot >"$W/sysctl.after"
  local changed strict kv key
  changed=$(diff "$W/sysctl.before" "$W/sysctl.after" | sed -n 's/^> //p' | grep -vE "$SYSCTL_VOLATILE" \
    | cut -d= -f1 | grep -vxFf "$W/sysctl.moving" | tr '\n' ' ')
  strict=""
  for key in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes; do
    [ "$(grep "^$key=" "$W/sysctl.before")" = "$(grep "^$key=" "$W/sysctl.after")" ] || strict+="$key "
  done
  if [ -n "$strict$changed" ]; then
    row host_sysctl FAIL "the host's kernel settings changed: ${strict}${changed}"
  else
    kv=$(for key in vm/overcommit_memory kernel/panic; do printf '%s=%s (the kubelet saw %s) ' "${key//\//.}" \
      "$(grep "^$key=" "$W/sysctl.after" | cut -d= -f2 | tr -d ' ')" "$(cat "/proc/sys/$key")"; done)
    row host_sysctl PASS "$(wc -l <"$W/sysctl.after") host values unchanged, among them $kv"
  fi
}

# ------------------------------------------------------------------ run
say "kubelet at $URL, node $NODE, CRI default runtime $RT"
sysctl_snapshot >"$W/sysctl.before"
sleep 1
# what moves by itself here (between two snapshots) is no evidence against the kubelet
sysctl_snapshot | diff - "$W/sysctl.before" | sed -n 's/^> //p' | cut -d= -f1 >"$W/sysctl.moving"
echo "-" >>"$W/sysctl.moving"  # never empty: grep -f of an empty file matches nothing
step_pod_up
step_checkpoint_api
step_checkpointctl
step_layout
step_image
step_restore
step_second_checkpoint
step_refused
step_delete
step_host_sysctl
say "work dir $W"
# non-zero when a check failed: the bed then keeps its logs (containerd, kubelet)
[ -z "$ANY_FAIL" ]
