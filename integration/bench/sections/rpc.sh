# The proxy's cost per Task RPC next to its floor (kata-cr-bench latency), and
# the proxy's RSS.
RPCS=${BENCH_RPCS:-2000}
RPC_BATCHES=${BENCH_RPC_BATCHES:-5}
id=bench-rpc-$$
start_workload kata-cr "$id" counter
state=/run/containerd/io.containerd.runtime.v2.task/$NS/$id/kata-cr.json
"$BENCH" latency --direct "$(jq -r .inner.address "$state")" \
  --direct-version "$(jq -r .inner.version "$state")" \
  --proxied "$(jq -r .proxy.address "$state")" --id "$id" -n "$RPCS" --batches "$RPC_BATCHES" \
  --record "$OUT/raw.tsv" --samples "$OUT/rpc-samples.tsv" >&2 \
  || die "kata-cr-bench latency failed"
pid=$(pgrep -f "__kata-cr-serve .*\"id\":\"$id\"" | head -1) || die "no proxy serving $id"
rss_kb=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
[ -n "$rss_kb" ] || die "no VmRSS for the proxy (pid $pid)"
record rss.kib kata-cr 1pod 1 "$rss_kb"
rm_ctr "$id"
