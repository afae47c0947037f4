# Container start latency: ctr run -d (create + start), runtimes alternating.
STARTS=${BENCH_STARTS:-10}
for i in $(seq 1 "$STARTS"); do
  for rt in runc kata-cr; do
    cid=bench-start-$rt-$i-$$
    track_ctr "$cid"
    t0=$EPOCHREALTIME
    ctr -n $NS run -d --runtime "io.containerd.$rt.v2" $IMG "$cid" sleep 100000 >/dev/null \
      || die "ctr run -d $cid ($rt) failed"
    record start.s "$rt" - "$i" "$(since "$t0")"
    rm_ctr "$cid"
  done
done
