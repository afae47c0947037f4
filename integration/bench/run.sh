#!/usr/bin/env bash
# Proxy benchmark, run inside the test bed:
#   integration/testbed run -- integration/bench/run.sh
# Prints, measured in this one run against vanilla runc on the same machine:
# the latency one Task RPC gains through the proxy (State, p50/p99), container
# start latency kata-cr vs runc (median of N, ratio), and the proxy's RSS.
# Figures, not pass/fail: targets are p50 added < 100 us, start ratio < 1.05,
# RSS < 10 MiB.
#
# A figure measured on a failed operation is no figure: every step that is
# timed or read must succeed, or the run stops naming it (set -e also inside
# $(...), via inherit_errexit).
set -euo pipefail
shopt -s inherit_errexit
die() { echo "bench: $*" >&2; exit 1; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
bench=${KATA_CR_BIN_DIR:-$repo/target/x86_64-unknown-linux-gnu/release}/kata-cr-bench
N=${BENCH_STARTS:-15}
RPCS=${BENCH_RPCS:-3000}
IMG=localhost:5000/busybox:latest
ns=default
ids=()
cleanup() {
  for id in "${ids[@]}"; do
    ctr -n $ns t kill -s 9 "$id" >/dev/null 2>&1 || true
    ctr -n $ns t rm -f "$id" >/dev/null 2>&1 || true
    ctr -n $ns c rm "$id" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

[ -x "$bench" ] || die "$bench missing (make build)"

# 1. RPC latency, direct vs proxied, on one kata-cr container.
id=bench-rpc-$$
ids+=("$id")
ctr -n $ns run -d --runtime io.containerd.kata-cr.v2 $IMG "$id" sleep 100000 >/dev/null
state=/run/containerd/io.containerd.runtime.v2.task/$ns/$id/kata-cr.json
"$bench" rpc --direct "$(jq -r .inner.address "$state")" \
  --direct-version "$(jq -r .inner.version "$state")" \
  --proxied "$(jq -r .proxy.address "$state")" --id "$id" -n "$RPCS"

# 2. RSS of the proxy serving that container.
pid=$(pgrep -f "__kata-cr-serve .*\"id\":\"$id\"" | head -1) || die "no proxy serving $id"
rss_kb=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
[ -n "$rss_kb" ] || die "no VmRSS for the proxy (pid $pid)"
echo "proxy RSS: $((rss_kb / 1024)).$(( (rss_kb % 1024) * 10 / 1024 )) MiB (${rss_kb} kB; target < 10 MiB)"

# 3. Start latency: ctr run -d (create + start), alternating runtimes.
declare -A t
for i in $(seq 1 "$N"); do
  for rt in runc kata-cr; do
    cid=bench-start-$rt-$i-$$
    ids+=("$cid")
    t0=$EPOCHREALTIME
    ctr -n $ns run -d --runtime "io.containerd.$rt.v2" $IMG "$cid" sleep 100000 >/dev/null \
      || die "ctr run -d $cid ($rt) failed"
    t1=$EPOCHREALTIME
    t[$rt]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}') "
    # the next start must not overlap this one's teardown
    ctr -n $ns t rm -f "$cid" >/dev/null || die "ctr t rm -f $cid failed"
    ctr -n $ns c rm "$cid" >/dev/null || die "ctr c rm $cid failed"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END{print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
mr=$(echo "${t[runc]}" | median)
mk=$(echo "${t[kata-cr]}" | median)
awk -v r="$mr" -v k="$mk" -v n="$N" 'BEGIN{printf "container start (ctr run -d, median of %d): runc %.1f ms, kata-cr %.1f ms, ratio %.3f (target < 1.05)\n", n, r*1000, k*1000, k/r}'

# 4. Checkpoint time, kata-cr vs runc, same workloads (ctr t checkpoint, live).
#    counter: a shell loop; hog: 256 MiB of incompressible memory.
ckpt_once() { # ckpt_once RUNTIME ID IMAGE_DIR -> seconds
  local t0 t1
  t0=$EPOCHREALTIME
  ctr -n $ns t checkpoint --image-path "$3" "$2" >/dev/null || die "checkpoint of $2 ($1) failed"
  [ -f "$3/inventory.img" ] || die "checkpoint of $2 ($1) left no inventory.img in $3"
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}'
}
start_workload() { # start_workload RUNTIME ID KIND
  local rt=$1 id=$2
  ids+=("$id")
  case $3 in
    counter) ctr -n $ns run -d --runtime "io.containerd.$rt.v2" $IMG "$id" \
               sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/c; sleep 0.2; done' >/dev/null ;;
    hog*)    ctr -n $ns run -d --runtime "io.containerd.$rt.v2" \
               --mount "type=bind,src=$bench,dst=/hog,options=rbind:ro" $IMG "$id" /hog hog "${3#hog}" >/dev/null ;;
  esac || die "ctr run -d $id ($rt, $3) failed"
  # settled: the hog has touched all its memory, the counter has counted
  sleep 1
}
CK=${BENCH_CHECKPOINTS:-5}
work=/var/lib/containerd/kata-cr-bench   # same mount as the snapshots: rename path
mkdir -p "$work"
for kind in counter hog256; do
  declare -A ck=()
  for rt in runc kata-cr; do
    id=bench-ck-$kind-$rt-$$
    start_workload "$rt" "$id" "$kind"
    for i in $(seq 1 "$CK"); do
      s=$(ckpt_once "$rt" "$id" "$work/$id-$i")
      ck[$rt]+="$s "
      rm -rf "${work:?}/$id-$i"
      sleep 1.05 # ctr names checkpoint images by the second
    done
  done
  r=$(echo "${ck[runc]}" | median); k=$(echo "${ck[kata-cr]}" | median)
  awk -v r="$r" -v k="$k" -v n="$CK" -v w="$kind" 'BEGIN{printf "checkpoint %s (ctr t checkpoint, median of %d): runc %.0f ms, kata-cr %.0f ms, ratio %.2f\n", w, n, r*1000, k*1000, k/r}'
done

# 5. Staging cost for a 1 GiB workload: rename (image path on the snapshots' mount)
#    vs copy (image path on another mount). The proxy logs its own split.
id=bench-stage-$$
start_workload kata-cr "$id" hog1024
sleep 2
ctr -n $ns t checkpoint --image-path "$work/$id-rename" "$id" >/dev/null || die "checkpoint of $id (rename) failed"
sleep 1.05
ctr -n $ns t checkpoint --image-path "/tmp/$id-copy" "$id" >/dev/null || die "checkpoint of $id (copy) failed"
done_lines=$(grep "checkpoint done id=\"\?$id" "${KATA_CR_BED_LOG_DIR:-/var/log/kata-cr-bed}/containerd.log") \
  || die "the proxy logged no 'checkpoint done' for $id"
[ "$(grep -c . <<<"$done_lines")" = 2 ] || die "want 2 'checkpoint done' lines for $id, got: $done_lines"
sed -E 's/.*files=([0-9]+) bytes=([0-9]+) method=([A-Za-z]+) dump_ms=([0-9]+) stage_ms=([0-9]+).*/\3 \2 \4 \5/' <<<"$done_lines" \
  | while read -r method bytes dump stage; do
      awk -v m="$method" -v b="$bytes" -v d="$dump" -v s="$stage" \
        'BEGIN{printf "staging 1 GiB workload (%.0f MiB image set): %s %d ms (criu dump %d ms)\n", b/1048576, tolower(m), s, d}'
    done
rm -rf "${work:?}/$id-rename" "/tmp/$id-copy"

# 6. Restore time, kata-cr vs runc (ctr c restore --live of a counter's
#    checkpoint), and the whole round trip checkpoint + kill + rm + restore.
RS=${BENCH_RESTORES:-5}
declare -A rs=() rt_trip=()
for rt in runc kata-cr; do
  id=bench-rs-$rt-$$
  start_workload "$rt" "$id" counter
  for i in $(seq 1 "$RS"); do
    ref=localhost/bench-rs-$rt:$i
    t0=$EPOCHREALTIME
    ctr -n $ns c checkpoint --task "$id" "$ref" >/dev/null || die "checkpoint of $id ($rt) failed"
    ctr -n $ns t rm -f "$id" >/dev/null || die "ctr t rm -f $id failed"
    ctr -n $ns c rm "$id" >/dev/null || die "ctr c rm $id failed"
    t1=$EPOCHREALTIME
    ctr -n $ns c restore --live "$id" "$ref" >/dev/null || die "restore of $id ($rt) failed"
    t2=$EPOCHREALTIME
    [ "$(ctr -n $ns t ls | awk -v id="$id" '$1 == id {print $3}')" = RUNNING ] \
      || die "$id ($rt) is not running after its restore"
    rs[$rt]+="$(awk -v a="$t1" -v b="$t2" 'BEGIN{printf "%.6f", b-a}') "
    rt_trip[$rt]+="$(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.6f", b-a}') "
    ctr -n $ns images rm "$ref" >/dev/null 2>&1
    sleep 1.05
  done
done
for what in restore round-trip; do
  if [ "$what" = restore ]; then r=$(echo "${rs[runc]}" | median); k=$(echo "${rs[kata-cr]}" | median)
  else r=$(echo "${rt_trip[runc]}" | median); k=$(echo "${rt_trip[kata-cr]}" | median); fi
  awk -v r="$r" -v k="$k" -v n="$RS" -v w="$what" 'BEGIN{printf "%s (counter, median of %d): runc %.0f ms, kata-cr %.0f ms, ratio %.2f (target < 1.15)\n", w, n, r*1000, k*1000, k/r}'
done
