#!/usr/bin/env bash
# The main job on the local test bed (make demo, or
# integration/testbed run -- integration/demo.sh): a live checkpoint of a
# running counter, then a restore, through kata-cr, with ctr and with CRI,
# next to vanilla runc. The counter goes on from where it was.
set -euo pipefail
IMG=localhost:5000/busybox:latest
COUNTER='i=$(cat /tmp/c 2>/dev/null || echo 0); while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; sleep 0.2; done'
work=$(mktemp -d /tmp/kata-cr-demo.XXXXXX)
# crictl gives each call 2 s by default (as crictl 1.36); a checkpoint or a restore
# may take longer: 60 s, as an operator's /etc/crictl.yaml would say
printf 'timeout: 60\n' >"$work/crictl.yaml"
export CRI_CONFIG_FILE=$work/crictl.yaml
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
  step "$rt: kill and remove it, then restore it from the checkpoint (ctr c restore --live)"
  ctr t kill -s 9 "$id" >/dev/null; sleep 0.5
  ctr t rm "$id" >/dev/null 2>&1 || true; ctr c rm "$id" >/dev/null
  t0=$EPOCHREALTIME
  ctr c restore --live "$id" "localhost/$id:ck" >/dev/null
  t1=$EPOCHREALTIME
  sleep 0.5
  echo "restore took $(ms "$t0" "$t1"); task: $(ctr t ls | awk -v id="$id" '$1 == id {print $3}'); counter at the checkpoint: $a, after the restore: $(count "$id") (resumed, not reset)"
  ctr t exec --exec-id ps2 "$id" ps -o pid,ppid,args
done

step "kata-cr through CRI: crictl runp/create/start, then crictl checkpoint --export"
jq -n '{metadata: {name: "demo", namespace: "demo", uid: "demo-uid", attempt: 0},
        log_directory: "/tmp/demo-logs", linux: {security_context: {namespace_options: {network: 2}}}}' >"$work/pod.json"
jq -n --arg c "$COUNTER" '{metadata: {name: "counter", attempt: 0}, image: {image: "localhost:5000/busybox:latest"},
        command: ["sh", "-c", $c], log_path: "counter.log",
        linux: {security_context: {namespace_options: {pid: 1}}}}' >"$work/ctr.json"
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

step "kata-cr through CRI: remove the pod, restore the container into a new pod from the archive"
crictl rmp -f "$pod" >/dev/null
jq '.metadata.name = "demo2" | .metadata.uid = "demo2-uid"' "$work/pod.json" >"$work/pod2.json"
pod=$(crictl runp --runtime kata-cr "$work/pod2.json")
jq --arg t "$work/counter.tar" '.image.image = $t' "$work/ctr.json" >"$work/restore.json"
t0=$EPOCHREALTIME
c=$(crictl create "$pod" "$work/restore.json" "$work/pod2.json")
crictl start "$c" >/dev/null
t1=$EPOCHREALTIME
sleep 0.5
echo "create + start from the archive took $(ms "$t0" "$t1"); state: $(crictl inspect "$c" | jq -r .status.state); counter at the checkpoint: $a, after the restore: $(crictl exec -s "$c" cat /tmp/c) (resumed, not reset)"
