# The CRI paths with a 1 GiB workload, runc and kata-cr: crictl checkpoint
# --export, then a new pod whose container is created from the archive; and for
# kata-cr once from an OCI checkpoint image built from the archive (the
# kubelet's way), with the proxy's staging on each path.
CRI_SIZE=${BENCH_CRI_SIZE:-1024}
CRI_REPS=${BENCH_CRI_REPS:-2}
d=$OUT/cri
mkdir -p "$d"
new_pod() { # new_pod RUNTIME NAME -> pod id
  local p
  pod_json "$2" "$d/$2.pod.json"
  p=$("${CRICTL[@]}" runp --runtime "$1" "$d/$2.pod.json") || die "crictl runp $2 ($1) failed"
  track_pod "$p"
  echo "$p"
}
start_ctr() { # start_ctr POD CTR_JSON POD_JSON -> container id, running
  local c
  c=$("${CRICTL[@]}" create "$1" "$2" "$3") || die "crictl create from $2 failed"
  "${CRICTL[@]}" start "$c" >/dev/null || die "crictl start $c failed"
  echo "$c"
}
cri_running() { # cri_running ID
  [ "$("${CRICTL[@]}" inspect "$1" | jq -r .status.state)" = CONTAINER_RUNNING ] \
    || die "container $1 is not running"
}
declare -A pod=() c=()
for rt in runc kata-cr; do
  pod[$rt]=$(new_pod "$rt" "bench-cri-$rt-0")
  ctr_json bench-hog "$d/$rt.ctr.json" "$CRI_SIZE"
  c[$rt]=$(start_ctr "${pod[$rt]}" "$d/$rt.ctr.json" "$d/bench-cri-$rt-0.pod.json")
done
for rt in runc kata-cr; do wait_ready "${c[$rt]}" "$CRI_SIZE" "$CRI_NS"; done

for i in $(seq 1 "$CRI_REPS"); do
  for rt in runc kata-cr; do
    tar=$d/$rt.tar
    rm -f "$tar"
    mark=$(log_mark)
    t0=$EPOCHREALTIME
    "${CRICTL[@]}" checkpoint --export="$tar" "${c[$rt]}" >/dev/null || die "crictl checkpoint ${c[$rt]} ($rt) failed"
    record cri.ckpt.s "$rt" "$CRI_SIZE" "$i" "$(since "$t0")"
    [ "$rt" = kata-cr ] && record stage.ms kata-cr cri-export "$i" "$(stage_ms "$mark" "${c[$rt]}" checkpoint)"
    "${CRICTL[@]}" rmp -f "${pod[$rt]}" >/dev/null || die "crictl rmp ${pod[$rt]} failed"
    pod[$rt]=$(new_pod "$rt" "bench-cri-$rt-$i")
    jq --arg t "$tar" '.image.image = $t' "$d/$rt.ctr.json" >"$d/$rt.restore.json"
    mark=$(log_mark)
    t0=$EPOCHREALTIME
    c[$rt]=$(start_ctr "${pod[$rt]}" "$d/$rt.restore.json" "$d/bench-cri-$rt-$i.pod.json")
    record cri.restore.s "$rt" "$CRI_SIZE" "$i" "$(since "$t0")"
    cri_running "${c[$rt]}"
    [ "$rt" = kata-cr ] && record stage.ms kata-cr restore-archive "$i" "$(stage_ms "$mark" "${c[$rt]}" restore)"
  done
done

# kata-cr from an OCI checkpoint image (the last archive, as an image in the registry).
ref=localhost:5000/bench-checkpoint:$$
"$SUITES/checkpoint-image" "$d/kata-cr.tar" "$ref" "$d/image.tar" || die "checkpoint-image failed"
ctr -n $CRI_NS images import "$d/image.tar" >/dev/null || die "import of $ref failed"
ctr -n $CRI_NS images push --plain-http "$ref" >/dev/null || die "push of $ref failed"
ctr -n $CRI_NS images rm "$ref" >/dev/null || die "rm of $ref failed"
rm -f "$d/image.tar"
"${CRICTL[@]}" pull "$ref" >/dev/null || die "crictl pull $ref failed"
"${CRICTL[@]}" rmp -f "${pod[kata-cr]}" >/dev/null || die "crictl rmp ${pod[kata-cr]} failed"
pod[kata-cr]=$(new_pod kata-cr bench-cri-kata-cr-oci)
jq --arg t "$ref" '.image.image = $t' "$d/kata-cr.ctr.json" >"$d/oci.json"
mark=$(log_mark)
t0=$EPOCHREALTIME
c[kata-cr]=$(start_ctr "${pod[kata-cr]}" "$d/oci.json" "$d/bench-cri-kata-cr-oci.pod.json")
record cri.restore-oci.s kata-cr "$CRI_SIZE" 1 "$(since "$t0")"
cri_running "${c[kata-cr]}"
record stage.ms kata-cr restore-oci 1 "$(stage_ms "$mark" "${c[kata-cr]}" restore)"
for rt in runc kata-cr; do "${CRICTL[@]}" rmp -f "${pod[$rt]}" >/dev/null || true; done
"${CRICTL[@]}" rmi "$ref" >/dev/null 2>&1 || true
rm -rf "$d"/*.tar
