# PODS pods per runtime (a counter each), checkpointed all at once with crictl
# checkpoint --export, ROUNDS rounds, runtimes taking turns; each checkpoint's
# time and the round's total. Also the largest RSS among kata-cr's proxies.
PODS=${BENCH_PODS:-20}
ROUNDS=${BENCH_POD_ROUNDS:-3}
d=$OUT/pods
mkdir -p "$d"
declare -A ids=()
for rt in runc kata-cr; do
  for n in $(seq 1 "$PODS"); do
    pod_json "bench-p-$rt-$n" "$d/p-$rt-$n.json"
    p=$("${CRICTL[@]}" runp --runtime "$rt" "$d/p-$rt-$n.json") || die "crictl runp ($rt, $n) failed"
    track_pod "$p"
    ctr_json bench-counter "$d/c-$rt-$n.json" counter
    c=$("${CRICTL[@]}" create "$p" "$d/c-$rt-$n.json" "$d/p-$rt-$n.json") || die "crictl create ($rt, $n) failed"
    "${CRICTL[@]}" start "$c" >/dev/null || die "crictl start $c failed"
    ids[$rt]+="$c "
  done
done
for rt in runc kata-cr; do
  for c in ${ids[$rt]}; do wait_ready "$c" counter "$CRI_NS"; done
done
max=0
for pid in $(pgrep -f "__kata-cr-serve "); do
  kb=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  [ "${kb:-0}" -gt "$max" ] && max=$kb
done
[ "$max" -gt 0 ] || die "no kata-cr proxy found for the pods"
record rss.kib kata-cr 20pods 1 "$max"

for r in $(seq 1 "$ROUNDS"); do
  for rt in runc kata-cr; do
    pids=()
    t0=$EPOCHREALTIME
    for c in ${ids[$rt]}; do
      (
        s0=$EPOCHREALTIME
        "${CRICTL[@]}" checkpoint --export="$d/$c.tar" "$c" >/dev/null
        since "$s0" >"$d/$c.s"
      ) &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "a concurrent checkpoint ($rt, round $r) failed"; done
    record pods.total.s "$rt" "$PODS" "$r" "$(since "$t0")"
    for c in ${ids[$rt]}; do
      record pods.each.s "$rt" "$PODS" "$r" "$(cat "$d/$c.s")"
      rm -f "$d/$c.tar" "$d/$c.s"
    done
  done
done
"${CRICTL[@]}" pods -q --namespace '^bench$' | while read -r p; do
  "${CRICTL[@]}" rmp -f "$p" >/dev/null || die "crictl rmp $p failed"
done
