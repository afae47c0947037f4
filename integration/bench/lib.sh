# integration/bench/lib.sh -- what the benchmark's sections share (sourced by run.sh).
# A figure measured on a failed operation is no figure: every step that is timed or
# read must succeed, or the run stops naming it (set -e also inside $(...)).
set -euo pipefail
shopt -s inherit_errexit

NS=default          # ctr's namespace
CRI_NS=k8s.io       # CRI's
IMG=localhost:5000/busybox:latest
CLOG=${KATA_CR_BED_LOG_DIR:-/var/log/kata-cr-bed}/containerd.log
# Same filesystem and mount as the snapshots' upperdirs: the rename path.
WORK=/var/lib/containerd/kata-cr-bench
# Another mount (of the same disk here): what crosses it is copied.
OTHER=/tmp/kata-cr-bench
# The bench's crictl calls get no 2 s deadline: a 1 GiB checkpoint takes longer.
CRICTL=(crictl -t 10m)

die() { echo "bench: $*" >&2; exit 1; }
say() { printf '[bench %4ds] %s\n' "$SECONDS" "$*" >&2; }

# record METRIC RUNTIME PARAM REP VALUE (see src/record.rs)
record() {
  [ $# = 5 ] || die "record: want 5 fields, got: $*"
  [[ $5 =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "record $1 $2 $3: not a number: '$5'"
  printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$OUT/raw.tsv"
}
meta() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/meta.tsv"; }

# A failed operation gives no figure, and is not hidden either: it is
# written to failures.txt (the report shows it) and tried once more.
# attempt WHAT CMD... : CMD's output on success
attempt() {
  local what=$1 out err
  shift
  err=$(mktemp)
  if out=$("$@" 2>"$err"); then rm -f "$err"; printf '%s' "$out"; return 0; fi
  { printf '%s: %s failed, tried again:\n' "$(date -u +%T)" "$what"; sed 's/^/    /' "$err" | head -30; } >>"$OUT/failures.txt"
  say "$what failed; trying once more (failures.txt)"
  sleep 1.05
  if out=$("$@" 2>"$err"); then rm -f "$err"; printf '%s' "$out"; return 0; fi
  cat "$err" >&2
  rm -f "$err"
  die "$what failed twice"
}

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.6f", b-a}'; }
mib_per_s() { awk -v m="$1" -v s="$2" 'BEGIN{printf "%.3f", m/s}'; }

# Containers and pods to remove when the run ends, whatever happens.
track_ctr() { echo "ctr $1" >>"$OUT/.cleanup"; }
track_pod() { echo "pod $1" >>"$OUT/.cleanup"; }
cleanup_all() {
  [ -f "$OUT/.cleanup" ] || return 0
  local kind id
  while read -r kind id; do
    case $kind in
      ctr) ctr -n $NS t rm -f "$id" >/dev/null 2>&1 || true
           ctr -n $NS c rm "$id" >/dev/null 2>&1 || true ;;
      pod) "${CRICTL[@]}" rmp -f "$id" >/dev/null 2>&1 || true ;;
    esac
  done <"$OUT/.cleanup"
  rm -f "$OUT/.cleanup"
  rm -rf "$WORK" "$OTHER"
}

rm_ctr() { # rm_ctr ID: the task and the container, so that the next one does not overlap
  ctr -n $NS t rm -f "$1" >/dev/null 2>&1 || true
  ctr -n $NS c rm "$1" >/dev/null || die "ctr c rm $1 failed"
}
task_status() { ctr -n $NS t ls | awk -v id="$1" '$1 == id {print $3}'; }

# A workload: counter (a shell loop writing /tmp/c) or N (N MiB of touched,
# incompressible memory: kata-cr-bench hog, bound in read-only).
start_workload() { # start_workload RUNTIME ID KIND
  local rt=$1 id=$2 kind=$3
  track_ctr "$id"
  case $kind in
    counter) ctr -n $NS run -d --runtime "io.containerd.$rt.v2" $IMG "$id" \
               sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.2; done' >/dev/null ;;
    *)       ctr -n $NS run -d --runtime "io.containerd.$rt.v2" \
               --mount "type=bind,src=$BENCH,dst=/hog,options=rbind:ro" $IMG "$id" /hog hog "$kind" >/dev/null ;;
  esac || die "ctr run -d $id ($rt, $kind) failed"
}
wait_ready() { # wait_ready ID KIND [NAMESPACE]: the hog has touched all its memory, the counter has counted
  local id=$1 kind=$2 f i
  f=/run/containerd/io.containerd.runtime.v2.task/${3:-$NS}/$id/rootfs/tmp/$([ "$kind" = counter ] && echo c || echo hog-ready)
  for i in $(seq 1 600); do
    [ -s "$f" ] && return 0
    sleep 0.1
  done
  die "$id ($kind) not ready after 60 s (no $f)"
}

# The proxy's own account of its staging, from containerd's log (where the
# shim's log goes): mark the log's end before an operation, then read what
# the proxy logged for ID after the mark.
log_mark() { stat -c %s "$CLOG"; }
stage_ms() { # stage_ms MARK ID checkpoint|restore -> milliseconds
  local what line
  case $3 in
    checkpoint) what='checkpoint done' ;;
    restore) what='restore: images staged' ;;
  esac
  line=$(tail -c +"$(($1 + 1))" "$CLOG" | grep -F "$what" | grep -F "$2" | tail -1) \
    || die "the proxy logged no '$what' for $2"
  [[ $line =~ stage_ms=([0-9]+) ]] || die "no stage_ms in the proxy's '$what' line for $2: $line"
  echo "${BASH_REMATCH[1]}"
}

# CRI configs: a host-network pod, a container running the hog of SIZE MiB
# (or the counter) with its own pid namespace, as kubelet sends.
pod_json() { # pod_json NAME FILE
  jq -n --arg n "$1" --arg d "$OUT/cri-logs/$1" \
    '{metadata: {name: $n, namespace: "bench", uid: ($n + "-uid"), attempt: 0}, log_directory: $d,
      linux: {security_context: {namespace_options: {network: 2}}}}' >"$2"
}
ctr_json() { # ctr_json NAME FILE KIND [IMAGE]
  local cmd
  case $3 in
    counter) cmd='["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.2; done"]' ;;
    *) cmd="[\"/hog\", \"hog\", \"$3\"]" ;;
  esac
  jq -n --arg n "$1" --argjson cmd "$cmd" --arg bench "$BENCH" --arg img "${4:-$IMG}" \
    '{metadata: {name: $n, attempt: 0}, image: {image: $img}, command: $cmd, log_path: ($n + ".log"),
      mounts: [{container_path: "/hog", host_path: $bench, readonly: true}],
      linux: {security_context: {namespace_options: {pid: 1}}}}' >"$2"
}
