#!/usr/bin/env bash
# Checkpoint through kata-cr, against vanilla runc in the same run:
#   integration/testbed run -- integration/suites/run-all
# On the real Kata (integration/testbed run --kata): kata-cr in front of the Kata shim,
# vanilla Kata's answer to a checkpoint in the A/B table (run_cr, lib.sh).
# ctr c checkpoint --task (plain and --rw --image), ctr t checkpoint, CRI checkpoint
# --export; the container keeps running and counting; no debris in the rootfs after
# repeated checkpoints; and the failure paths: agent unreachable, criu failing, two
# checkpoints at once, a .kata-cr planted by the container.
# shellcheck source=integration/suites/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

# Written by rename, so that a reader never sees a half-written (empty) file.
COUNTER='i=0; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; echo $i > /dev/shm/c.n; mv /dev/shm/c.n /dev/shm/c; sleep 0.2; done'
# A listening TCP server and a 64 MiB buffer kept in memory (tmpfs) beside the counter.
# (busybox nc: -ll keeps listening; -lk is not an option of its nc)
rich() { echo "dd if=/dev/urandom of=/dev/shm/buf bs=1M count=64 2>/dev/null; nc -ll -p $1 -e cat & $COUNTER"; }
RICH=$(rich 18080)
AGENT_SOCK=/run/kata-cr/agent.sock

counter() { ctr t exec --exec-id "x$RANDOM$RANDOM" "$1" cat /tmp/c 2>/dev/null; }
expect_counting() { # expect_counting ID: the counter moves on after the checkpoint
  local a b
  a=$(counter "$1"); sleep 0.7; b=$(counter "$1")
  [ -n "$a" ] && [ -n "$b" ] && [ "$b" -gt "$a" ] || fail "$1: counter not moving ($a -> $b)"
}
upperdir_of() { # upperdir of a container's rootfs, from the mount table
  if on_kata; then # the Kata shim mounts it in its own mount namespace: ask the snapshotter
    ctr snapshots mounts /rootfs "$1" 2>/dev/null | grep -o 'upperdir=[^,]*' | cut -d= -f2 | head -n 1
    return
  fi
  awk -v m="/run/containerd/io.containerd.runtime.v2.task/$CTR_NS/$1/rootfs" \
    '$5 == m {print}' /proc/self/mountinfo | grep -o 'upperdir=[^,]*' | cut -d= -f2
}
criu_blob_files() { # list the files of the criu tar of checkpoint image REF
  local dg
  dg=$(ctr images inspect "$1" 2>/dev/null | grep 'criu.checkpoint.criu.tar' | grep -o 'sha256:[0-9a-f]\{64\}' | head -1)
  [ -n "$dg" ] || fail "no criu tar in checkpoint image $1"
  ctr content get "$dg" | tar -tf - | sed 's#^\./##' | grep . | sort
}
restart_agent() {
  pgrep -x kata-cr-agent >/dev/null && return 0
  setsid kata-cr-agent --listen "unix://$AGENT_SOCK" </dev/null >>"${KATA_CR_BED_LOG_DIR:-/tmp}/kata-cr-agent.log" 2>&1 &
  wait_for 10 test -S "$AGENT_SOCK" || fail "kata-cr-agent did not come back"
}

# ------------------------------------------------------------------ A/B
scn_ctr_checkpoint_task() {
  local id ref; id=$(uid ck); ref=localhost/ck-$id:1
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  must ctr c checkpoint --task "$id" "$ref" >/dev/null || exit 1
  echo "status after checkpoint: $(c_status "$id")"
  expect_counting "$id"
  echo "criu images: $(criu_blob_files "$ref" | grep -cE '^(inventory|pstree)\.img$') of inventory/pstree; pages: $(criu_blob_files "$ref" | grep -c '^pages-')"
  criu_blob_files "$ref" | grep -qv '/' || fail "image set is not flat"
  ctr images rm "$ref" >/dev/null 2>&1
}
t_ctr_checkpoint_task() { run_cr scn_ctr_checkpoint_task; }

scn_ctr_checkpoint_rw_image() {
  local id ref; id=$(uid ckrw); ref=localhost/ckrw-$id:1
  c_run_d "$id" sh -c "echo data > /state; $COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  must ctr c checkpoint --task --rw --image "$id" "$ref" >/dev/null || exit 1
  echo "status: $(c_status "$id")"
  expect_counting "$id"
  echo "layers: $(ctr images inspect "$ref" 2>/dev/null | grep -oE 'checkpoint\.(criu\.tar|rw\.tar|config\.v1\+proto)|rootfs\.diff\.tar|image\.rootfs\.diff' | sort -u | tr '\n' ' ')"
  ctr images rm "$ref" >/dev/null 2>&1
}
t_ctr_checkpoint_rw_image() { run_cr scn_ctr_checkpoint_rw_image; }

scn_ctr_task_checkpoint() {
  local id dir; id=$(uid tck); dir=$E2E_CASE_DIR/images-$RT
  # Host network, a port per runtime: ctr's own network namespace has its loopback down.
  local port; port=$([ "$RT" = runc ] && echo 18081 || echo 18082)
  track_ctr "$id"
  must ctr run -d "${E2E_DETACHED_IO[@]}" --net-host --runtime "$(rt_ctr)" "$IMG" "$id" sh -c "$(rich "$port")" >/dev/null || exit 1
  wait_status "$id" RUNNING; sleep 2
  must ctr t checkpoint --image-path "$dir" "$id" >/dev/null || exit 1
  echo "status: $(c_status "$id")"
  expect_counting "$id"
  echo "files: inventory=$(test -f "$dir/inventory.img" && echo yes) pstree=$(test -f "$dir/pstree.img" && echo yes) subdirs=$(find "$dir" -mindepth 1 -type d | count) non-regular=$(find "$dir" -mindepth 1 ! -type f | count)"
  # the 64 MiB buffer lives in /dev/shm: its bytes are in the image set
  local sz; sz=$(du -sm "$dir" | cut -f1)
  [ "$sz" -ge 64 ] || fail "image set is $sz MiB, the 64 MiB tmpfs buffer is missing"
  local answer; answer=$(echo ping | timeout 5 ctr t exec --exec-id "n$RANDOM" "$id" nc -w 2 127.0.0.1 "$port" 2>/dev/null | head -1)
  echo "tcp server answers: $answer"
  expect_eq "the tcp echo server after the checkpoint" ping "$answer"
}
t_ctr_task_checkpoint() { run_cr scn_ctr_task_checkpoint; }

scn_ctr_checkpoint_exit() {
  local id dir; id=$(uid ckx); dir=$E2E_CASE_DIR/images-$RT
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  must ctr t checkpoint --exit --image-path "$dir" "$id" >/dev/null || exit 1
  wait_status "$id" STOPPED
  echo "status after checkpoint --exit: $(c_status "$id")"
  echo "inventory: $(test -f "$dir/inventory.img" && echo yes)"
  echo "delete: $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
}
t_ctr_checkpoint_exit() { run_cr scn_ctr_checkpoint_exit; }

scn_cri_checkpoint_export() {
  local pod c d=$E2E_CASE_DIR tar
  pod_json "$(uid pod)" "$d/pod.$RT.json"
  jq -n --arg c "$COUNTER" '{metadata: {name: "ck", attempt: 0}, image: {image: "localhost:5000/busybox:latest"},
      command: ["sh", "-c", $c], log_path: "ck.log"}' >"$d/c.$RT.json"
  pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod.$RT.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.$RT.json" "$d/pod.$RT.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  sleep 0.8
  tar=$d/ck-$RT.tar
  must crictl checkpoint --export="$tar" "$c" >/dev/null || exit 1
  echo "state after: $(crictl inspect "$c" | jq -r .status.state)"
  local a b; a=$(crictl exec -s "$c" cat /tmp/c); sleep 0.7; b=$(crictl exec -s "$c" cat /tmp/c)
  [ "$b" -gt "$a" ] || fail "counter not moving after CRI checkpoint ($a -> $b)"
  # dump.log and stats-dump are optional diagnostics: containerd 2.1.9+ has runc's criu
  # write them straight into its archive dir and gives other runtimes no such path
  # (kata-cr also leaves them in the CRI state dir, where 2.1.0-2.1.8 read them).
  echo "archive top level: $(tar -tf "$tar" | sed 's#^\./##; s#/.*##' | grep . | grep -vxE 'dump\.log|stats-dump' | sort -u | tr '\n' ' ')"
  echo "checkpoint/: inventory=$(tar -tf "$tar" | grep -c 'checkpoint/inventory.img$') pstree=$(tar -tf "$tar" | grep -c 'checkpoint/pstree.img$') pages=$(tar -tf "$tar" | grep -c 'checkpoint/pages-.*\.img$' | sed 's/^[1-9][0-9]*$/some/') nested=$(tar -tf "$tar" | grep -c '^\(\./\)\?checkpoint/[^/]*/.')"
  must crictl rmp -f "$pod" >/dev/null || exit 1
}
t_cri_checkpoint_export() { run_cr scn_cri_checkpoint_export; }

# The shape of what a checkpoint leaves, A/B, file by file (contents of criu's images
# aside): the CRI archive (`crictl checkpoint --export`, the layer of an OCI checkpoint
# image too), the metadata files' keys, what checkpointctl reads, and the criu tar of a
# `ctr c checkpoint` image. criu names images by pid or namespace id: those are N here.
norm_entries() { sed -E 's#^\./##; /^$/d; s#/$##; s#-[0-9]+((\.tar\.gz)?\.img)$#-N\1#' | sort -u; }
json_keys() { # the key paths of a JSON document, array indices and free-form maps left out
  jq -c '[paths | map(tostring) | join(".") | select(test("(^|\\.)(annotations|labels)(\\.|$)") | not)
          | gsub("\\.[0-9]+"; "[]")] | unique'
}
scn_archive_shape() {
  local d=$E2E_CASE_DIR pod c tar f id ref out
  ctr_json ck "$d/c.$RT.json" "$COUNTER"
  pod_json "$(uid pod)" "$d/pod.$RT.json"
  pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod.$RT.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.$RT.json" "$d/pod.$RT.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  wait_cri_state "$c" CONTAINER_RUNNING; sleep 0.6
  tar=$d/ck-$RT.tar
  must crictl checkpoint --export="$tar" "$c" >/dev/null || exit 1
  echo "CRI archive:"
  tar -tf "$tar" | norm_entries | sed 's/^/  /'
  for f in config.dump spec.dump status.dump status; do
    echo "$f keys: $(tar -xOf "$tar" "$f" | json_keys)"
  done
  out=$(must checkpointctl show "$tar") || exit 1
  echo "checkpointctl show: $(grep -c "${c:0:12}" <<<"$out") row for the container"
  out=$(must checkpointctl inspect --stats "$tar") || exit 1
  echo "checkpointctl inspect --stats: $(grep -oiE '(freezing|frozen|memdump|memwrite) time|pages (scanned|written)' <<<"$out" | sort -u | tr '\n' ',')"
  # checkpointctl counts everything under checkpoint/ as the checkpoint's size
  expect_eq "criu's log and statistics among the images" "" "$(tar -tf "$tar" | norm_entries | grep -E '^checkpoint/(dump\.log|stats-dump)$')"
  must crictl rmp -f "$pod" >/dev/null || exit 1
  id=$(uid ctrck); ref=localhost/ctrck-$id:1
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  must ctr c checkpoint --task "$id" "$ref" >/dev/null || exit 1
  # The one designed difference (README): a network namespace of the container's own
  # that no path names is external to kata-cr's dump (the restored workload joins the
  # new container's), so its image marks it (netns-N.img); runc's has none there.
  echo "ctr c checkpoint image, criu tar:"
  criu_blob_files "$ref" | norm_entries | grep -vx 'netns-N\.img' | sed 's/^/  /'
  ctr images rm "$ref" >/dev/null 2>&1
}
t_archive_shape() { run_both scn_archive_shape; }

# ------------------------------------------------------------------ kata-cr only
t_no_debris_after_three() {
  RT=kata-cr
  local id up i; id=$(uid deb)
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.5
  up=$(upperdir_of "$id"); [ -n "$up" ] || fail "no upperdir for $id"
  for i in 1 2 3; do
    sleep 1.1 # ctr names the checkpoint image by the second
    must ctr t checkpoint --image-path "$E2E_CASE_DIR/i$i" "$id" >/dev/null || exit 1
    [ -f "$E2E_CASE_DIR/i$i/inventory.img" ] || fail "checkpoint $i: no inventory.img"
  done
  expect_counting "$id"
  # An empty .kata-cr stays (see staging.rs); nothing in it.
  [ -z "$(cd "$up" && find .kata-cr -mindepth 1 2>/dev/null)" ] || fail "debris in the upperdir after 3 checkpoints: $(cd "$up" && find .kata-cr | tr '\n' ' ')"
  expect_eq "/.kata-cr inside the container" "" "$(ctr t exec --exec-id "l$RANDOM" "$id" ls -A /.kata-cr)"
  info "upperdir after 3 checkpoints: $(cd "$up" && find . -mindepth 1 | tr '\n' ' ')"
}

t_agent_unreachable() {
  RT=kata-cr
  local id out where=$AGENT_SOCK; id=$(uid noag)
  if on_kata; then
    # kata-cr-agent runs in the guest: kata-cr is pointed at a hybrid vsock nobody serves
    where=/run/kata-cr-remote-hypervisor/nowhere/vm.vsock
    put_file /etc/kata-cr/config.toml "$(sed 's#^remote_hybrid_vsock = .*#remote_hybrid_vsock = "'"$where"'"#' /etc/kata-cr/config.toml)"
  fi
  c_run_d "$id" sh -c "$COUNTER" || exit 1
  wait_status "$id" RUNNING
  if ! on_kata; then
    pkill -x kata-cr-agent; wait_for 5 eval '! pgrep -x kata-cr-agent >/dev/null'
    trap restart_agent EXIT
  fi
  if out=$(ctr t checkpoint --image-path "$E2E_CASE_DIR/img" "$id" 2>&1); then
    fail "checkpoint succeeded without an agent"
  fi
  info "error: $out"
  grep -qF "$where" <<<"$out" || fail "error does not name where it looked ($where): $out"
  grep -qi "precondition" <<<"$out" || fail "error is not FailedPrecondition: $out"
  expect_eq "status after the failed checkpoint" RUNNING "$(c_status "$id")"
  expect_counting "$id"
  [ -z "$(find "$E2E_CASE_DIR/img" -mindepth 1 2>/dev/null)" ] || fail "partial images left in the request path"
  on_kata || restart_agent
}

t_criu_failure() {
  RT=kata-cr
  # criu cannot dump a process holding a tty it does not know of: run the counter on a
  # terminal (ctr run -t under script) and checkpoint without shell-job support.
  local id out up; id=$(uid crf)
  track_ctr "$id"
  script -qec "ctr run -t --runtime $(rt_ctr) $IMG $id sh -c '$COUNTER'" /dev/null </dev/null >/dev/null 2>&1 &
  track_pid $!
  wait_status "$id" RUNNING 15
  sleep 0.5
  if out=$(ctr t checkpoint --image-path "$E2E_CASE_DIR/img" "$id" 2>&1); then
    info "criu dumped a tty-attached workload; no criu failure to observe with this workload"
    fail "expected criu to fail on a foreign tty"
  fi
  info "error: $(head -c 600 <<<"$out")"
  grep -qi "criu" <<<"$out" || fail "error does not carry criu's words: $out"
  expect_eq "status after the failed checkpoint" RUNNING "$(c_status "$id")"
  expect_counting "$id"
  up=$(upperdir_of "$id")
  [ -z "$(cd "$up" && find .kata-cr -mindepth 1 ! -name init 2>/dev/null)" ] || fail "partial images left in the rootfs"
  [ -z "$(find "$E2E_CASE_DIR/img" -mindepth 1 2>/dev/null)" ] || fail "partial images left in the request path"
}

t_concurrent_checkpoints() {
  RT=kata-cr
  local id r1 r2; id=$(uid conc)
  c_run_d "$id" sh -c "$RICH" || exit 1
  wait_status "$id" RUNNING; sleep 2
  ctr t checkpoint --image-path "$E2E_CASE_DIR/a" "$id" >"$E2E_CASE_DIR/a.out" 2>&1 & local p1=$!
  ctr t checkpoint --image-path "$E2E_CASE_DIR/b" "$id" >"$E2E_CASE_DIR/b.out" 2>&1 & local p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  info "first: exit $r1 $(head -c 300 "$E2E_CASE_DIR/a.out"); second: exit $r2 $(head -c 300 "$E2E_CASE_DIR/b.out")"
  [ "$r1" = 0 ] || [ "$r2" = 0 ] || fail "neither checkpoint succeeded"
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    grep -qiE "in progress|paused|state" "$E2E_CASE_DIR/a.out" "$E2E_CASE_DIR/b.out" || fail "the refused one does not say why"
  fi
  wait_for 5 _status_is "$id" RUNNING || fail "status $(c_status "$id") after concurrent checkpoints"
  expect_counting "$id"
}

t_planted_kata_cr() {
  RT=kata-cr
  local id out up; id=$(uid plant)
  mkdir -p /tmp/host-target && echo untouched >/tmp/host-target/marker
  # The container plants /.kata-cr as a symlink to a host-looking path, and a
  # fifo beside it.
  c_run_d "$id" sh -c "ln -s /tmp/host-target /.kata-cr && mkfifo /fifo; $COUNTER" || exit 1
  wait_status "$id" RUNNING; sleep 0.6
  up=$(upperdir_of "$id")
  if out=$(ctr t checkpoint --image-path "$E2E_CASE_DIR/img" "$id" 2>&1); then
    fail "checkpoint followed a planted .kata-cr symlink"
  fi
  info "error: $(head -c 400 <<<"$out")"
  grep -q ".kata-cr" <<<"$out" || fail "error does not name .kata-cr: $out"
  expect_eq "host file" untouched "$(cat /tmp/host-target/marker)"
  expect_eq "host dir entries" marker "$(ls -A /tmp/host-target)"
  expect_eq "status" RUNNING "$(c_status "$id")"
  expect_counting "$id"
  rm -rf /tmp/host-target
}

e2e_cases() {
  case_ "A/B ctr c checkpoint --task (live)" t_ctr_checkpoint_task
  case_ "A/B ctr c checkpoint --task --rw --image" t_ctr_checkpoint_rw_image
  case_ "A/B ctr t checkpoint (tcp server, 64 MiB tmpfs)" t_ctr_task_checkpoint
  case_ "A/B ctr t checkpoint --exit (task stops)" t_ctr_checkpoint_exit
  case_ "A/B CRI checkpoint --export archive shape" t_cri_checkpoint_export
  case_ "A/B archive and ctr image: runc's files in runc's places, checkpointctl reads both" t_archive_shape
  case_ "kata-cr: 3 checkpoints, no debris in rootfs/upperdir" t_no_debris_after_three
  case_ "kata-cr: agent unreachable -> FailedPrecondition, container untouched" t_agent_unreachable
  case_ "kata-cr: criu failure -> log tail, running, no partial images" t_criu_failure
  case_ "kata-cr: two concurrent checkpoints of one container" t_concurrent_checkpoints
  case_ "kata-cr: planted .kata-cr symlink is never followed" t_planted_kata_cr
}

e2e_main
