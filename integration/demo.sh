#!/usr/bin/env bash
# The main job on the local test bed (make demo, or
# integration/testbed run -- integration/demo.sh): a live checkpoint of a
# running counter through kata-cr, with ctr and with CRI, next to vanilla runc.
# Restore through kata-cr is not part of this build yet (see README, Status).
set -euo pipefail
IMG=localhost:5000/busybox:latest
COUNTER='i=0; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.2; done'
work=$(mktemp -d /tmp/kata-cr-demo.XXXXXX)
pod=""
cleanup() {
  for id in demo-kata-cr demo-runc; do
    ctr t kill -s 9 "$id" >/dev/null 2>&1 || true
    ctr t rm -f "$id" >/dev/null 2>&1 || true
    ctr c rm "$id" >/dev/null 2>&1 || true
  done
  [ -n "$pod" ] && crictl rmp -f "$pod" >/dev/null 2>&1
  ctr images rm localhost/demo-kata-cr:ck localhost/demo-runc:ck >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.0f ms", (b-a)*1000}'; }
count() { ctr t exec --exec-id "x$RANDOM" "$1" cat /tmp/c; }

for rt in kata-cr runc; do
  id=demo-$rt
  step "$rt: a counter container (ctr run --runtime io.containerd.$rt.v2)"
  ctr run -d --runtime "io.containerd.$rt.v2" $IMG "$id" sh -c "$COUNTER" >/dev/null
  sleep 1
  ctr t exec --exec-id ps "$id" ps -o pid,ppid,args
  echo "counter: $(count "$id")"
  step "$rt: live checkpoint (ctr c checkpoint --task) into image localhost/$id:ck"
  t0=$EPOCHREALTIME
  ctr c checkpoint --task "$id" "localhost/$id:ck" >/dev/null
  t1=$EPOCHREALTIME
  echo "checkpoint took $(ms "$t0" "$t1"); task: $(ctr t ls | awk -v id="$id" '$1 == id {print $3}')"
  dg=$(ctr images inspect "localhost/$id:ck" | grep 'criu.checkpoint.criu.tar' | grep -o 'sha256:[0-9a-f]\{64\}' | head -1)
  echo "criu image set: $(ctr content get "$dg" | tar -tf - | grep -c .) files, e.g. $(ctr content get "$dg" | tar -tf - | grep -E '^(inventory|pstree|pages-1)\.img$' | tr '\n' ' ')"
  a=$(count "$id"); sleep 1; b=$(count "$id")
  echo "still counting after the checkpoint: $a -> $b"
done

step "kata-cr through CRI: crictl runp/create/start, then crictl checkpoint --export"
jq -n '{metadata: {name: "demo", namespace: "demo", uid: "demo-uid", attempt: 0},
        log_directory: "/tmp/demo-logs", linux: {security_context: {namespace_options: {network: 2}}}}' >"$work/pod.json"
jq -n --arg c "$COUNTER" '{metadata: {name: "counter", attempt: 0}, image: {image: "localhost:5000/busybox:latest"},
        command: ["sh", "-c", $c], log_path: "counter.log"}' >"$work/ctr.json"
pod=$(crictl runp --runtime kata-cr "$work/pod.json")
c=$(crictl create "$pod" "$work/ctr.json" "$work/pod.json")
crictl start "$c" >/dev/null
sleep 1
t0=$EPOCHREALTIME
crictl checkpoint --export="$work/counter.tar" "$c" >/dev/null
t1=$EPOCHREALTIME
echo "CRI checkpoint took $(ms "$t0" "$t1"): $(du -h "$work/counter.tar" | cut -f1) archive"
echo "archive: $(tar -tf "$work/counter.tar" | sed 's#^\./##; s#/.*#/#' | grep . | sort -u | tr '\n' ' ')"
a=$(crictl exec -s "$c" cat /tmp/c); sleep 1; b=$(crictl exec -s "$c" cat /tmp/c)
echo "state: $(crictl inspect "$c" | jq -r .status.state), still counting: $a -> $b"

step "restore"
echo "Restore through kata-cr (ctr c restore --live, CRI create-from-checkpoint) is not in this build yet."
