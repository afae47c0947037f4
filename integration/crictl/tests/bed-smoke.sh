#!/usr/bin/env bash
# End-to-end smoke test of the project's crictl against containerd in the test bed,
# written as a script for real crictl would be (runc handler, host network, busybox).
#
#   CARGO_TARGET_DIR=/work/targets/crictl RUSTFLAGS='-C target-feature=+crt-static' \
#     cargo build --release --target x86_64-unknown-linux-gnu -p kata-cr-crictl
#   KATA_CR_BIN_DIR=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release \
#     integration/testbed run -- integration/crictl/tests/bed-smoke.sh
set -euo pipefail
RUNTIME=${RUNTIME:-runc}
W=$(mktemp -d /tmp/crictl-smoke.XXXXXX)
cd "$W"
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cat > pod.json <<'EOF'
{
    "metadata": {
        "name": "smoke-sandbox",
        "namespace": "default",
        "attempt": 1,
        "uid": "hdishd83djaidwnduwk28bcsb"
    },
    "log_directory": "/tmp/crictl-smoke-logs",
    "linux": {
        "security_context": {
            "namespace_options": {"network": 2}
        }
    }
}
EOF
cat > ctr.json <<'EOF'
{
  "metadata": {"name": "counter"},
  "image": {"image": "localhost:5000/busybox:latest"},
  "command": ["sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 1; done"],
  "envs": [{"key": "FOO", "value": "bar"}],
  "log_path": "counter.log",
  "linux": {}
}
EOF

step version
crictl version
step images
crictl images
step runp
POD=$(crictl runp --runtime "$RUNTIME" pod.json)
echo "pod $POD"
crictl pods
[ "$(crictl pods -q --name smoke-sandbox)" = "$POD" ] || fail "pods -q --name"
crictl inspectp "${POD:0:6}" | jq -e '.status.state == "SANDBOX_READY"' >/dev/null || fail inspectp
crictl inspectp "$POD" | jq -e '.status.linux.namespaces.options.network == "NODE"' || fail "host network"

step create/start
CTR=$(crictl create "$POD" ctr.json pod.json)
echo "ctr $CTR"
crictl start "${CTR:0:8}"
crictl ps
crictl ps -a --pod "${POD:0:5}" --name 'count.*' -q | grep -qx "$CTR" || fail "ps filters"
crictl inspect "$CTR" | jq -e '.status.state == "CONTAINER_RUNNING" and (.info.pid > 0)' || fail inspect
PID=$(crictl inspect -o go-template --template '{{.info.pid}}' "$CTR")
echo "pid $PID"
[ "$PID" -gt 0 ] || fail "go-template pid"

crictl inspect "$CTR" | jq -e '.status.startedAt | test("^20[0-9][0-9]-.*Z$")' >/dev/null || fail "startedAt"
crictl inspect -q "$CTR" | jq -e '(.info == null) and .status.state == "CONTAINER_RUNNING"' >/dev/null || fail "inspect -q"
crictl inspect "$CTR" "$CTR" | jq -e 'length == 2' >/dev/null || fail "inspect of two ids"
crictl inspectp -o yaml "$POD" | grep -q 'state: SANDBOX_READY' || fail "inspectp -o yaml"
crictl ps -o json | jq -e '.containers[0].state == "CONTAINER_RUNNING"' >/dev/null || fail "ps -o json"

step exec
[ "$(crictl exec --name counter -q cat /tmp/count)" -gt 0 ] || fail "exec with a filter"
[ "$(crictl exec "$CTR" sh -c 'echo $FOO')" = bar ] || fail "exec env"
set +e
crictl exec -s "$CTR" sh -c 'echo out; echo err >&2; exit 7'
rc=$?
set -e
[ "$rc" = 7 ] || fail "exec exit code $rc"
sleep 3
step logs
crictl logs --tail 2 "$CTR"
crictl logs "$CTR" | grep -q '^tick 1$' || fail logs

step stats
crictl stats
crictl stats -o json | jq -e '.stats | length == 1' >/dev/null || fail "stats -o json"

step checkpoint
BEFORE=$(crictl exec "$CTR" cat /tmp/count)
crictl checkpoint --export="$W/cp.tar" "$CTR"
ls -la "$W/cp.tar"
crictl rmp -f "$POD"
[ -z "$(crictl pods -q)" ] || fail "pod not removed"

step restore
# a YAML pod config without uid, as crictl accepts
cat > pod.yaml <<'EOF'
metadata:
  name: smoke-sandbox
  namespace: default
log_directory: /tmp/crictl-smoke-logs
linux:
  security_context:
    namespace_options:
      network: 2
EOF
POD2=$(crictl runp --runtime "$RUNTIME" pod.yaml)
sed "s#localhost:5000/busybox:latest#$W/cp.tar#" ctr.json > restore.json
CTR2=$(crictl create "$POD2" restore.json pod.yaml)
crictl start "$CTR2"
sleep 2
AFTER=$(crictl exec "$CTR2" cat /tmp/count)
echo "count before checkpoint $BEFORE, after restore $AFTER"
[ "$AFTER" -gt "$BEFORE" ] || fail "counter restarted after restore"

step stop/rm
timeout 20 crictl logs -f "$CTR2" > follow.log &
FOLLOW=$!
sleep 1
crictl stop -t 1 "$CTR2"
wait "$FOLLOW" || fail "logs -f did not end with the container"
grep -q '^tick ' follow.log || fail "logs -f printed nothing"
crictl inspect "$CTR2" | jq -e '.status.state == "CONTAINER_EXITED"' >/dev/null || fail "stop"
crictl rm "$CTR2"
crictl stopp "$POD2"
crictl rmp "$POD2"
set +e
crictl inspect "$CTR2"
rc=$?
set -e
[ "$rc" = 1 ] || fail "inspect of a removed container should fail"
crictl info | jq -e '.status.conditions | length > 0' >/dev/null || fail info
echo
echo "crictl bed smoke: OK"
