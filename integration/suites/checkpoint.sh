#!/usr/bin/env bash
# Checkpoint through kata-cr, against vanilla runc in the same run:
#   integration/testbed run -- integration/suites/run-all
# On the real Kata (integration/testbed run --kata): kata-cr in front of the Kata shim,
# vanilla Kata's answer to a checkpoint in the A/B table (run_cr, lib.sh).
# ctr c checkpoint --task (plain and --rw --image), ctr t checkpoint, CRI checkpoint
# --export; the container keeps running and counting; no debris in the rootfs after
# repeated checkpoints; and the failure paths: agent unreachable, criu failing, two
# checkpoints at once, a .kata-cr planted by the container (which no longer matters).
# shellcheck source=integration/suites/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

# Written by rename, so that a reader never sees a half-written (empty) file.
COUNTER='i=0; while :; do i=$((i+1)); echo $i > /tmp/c.n; mv /tmp/c.n /tmp/c; echo $i > /dev/shm/c.n; mv /dev/shm/c.n /dev/shm/c; sleep 0.2; done'
# A listening TCP server and a 64 MiB buffer kept in memory (tmpfs, /dev/shm unless
# given) beside the counter: rich PORT [DIR]
# (busybox nc: -ll keeps listening; -lk is not an option of its nc)
rich() { echo "dd if=/dev/urandom of=${2:-/dev/shm}/buf bs=1M count=64 2>/dev/null; nc -ll -p $1 -e cat & $COUNTER"; }
RICH=$(rich 18080)
AGENT_SOCK=/run/kata-cr/agent.sock

counter() { ctr t exec --exec-id "x$RANDOM$RANDOM" "$1" cat /tmp/c 2>/dev/null; }
counter_above() { local v; v=$(counter "$1"); [ -n "$v" ] && [ "$v" -gt "$2" ]; }
wait_counting() { # wait_counting ID: the counter has started
  poll 30 counter_above "$1" 0 || fail "$1: the counter never started"
}
expect_counting() { # expect_counting ID: the counter moves on (within 5 s)
  local a
  a=$(counter "$1")
  [ -n "$a" ] || fail "$1: no counter"
  poll 5 counter_above "$1" "$a" || fail "$1: counter not moving ($a -> $(counter "$1"))"
}
cri_counter() { crictl exec -s "$1" cat /tmp/c 2>/dev/null; }
cri_counter_above() { local v; v=$(cri_counter "$1"); [ -n "$v" ] && [ "$v" -gt "$2" ]; }
upperdir_of() { # upperdir of a container's rootfs, from the mount table
  if on_kata; then # the Kata shim mounts it in its own mount namespace: ask the snapshotter
    ctr snapshots mounts /rootfs "$1" 2>/dev/null | grep -o 'upperdir=[^,]*' | cut -d= -f2 | head -n 1
    return
  fi
  awk -v m="/run/containerd/io.containerd.runtime.v2.task/$CTR_NS/$1/rootfs" \
    '$5 == m {print}' /proc/self/mountinfo | grep -o 'upperdir=[^,]*' | cut -d= -f2
}
criu_blob_files() { # list the files of the criu tar of checkpoint image REF
  # (from the image's index: containerd 1.7's ctr has no `images inspect`)
  local idx dg
  idx=$(ctr images ls 2>/dev/null | awk -v r="$1" '$1 == r {print $3}')
  [ -n "$idx" ] || fail "no checkpoint image $1"
  dg=$(ctr content get "$idx" | jq -r '.manifests[] | select(.mediaType | endswith("criu.checkpoint.criu.tar")) | .digest' | head -n 1)
  [ -n "$dg" ] || fail "no criu tar in checkpoint image $1"
  local files
  files=$(ctr content get "$dg" | tar -tf -) || fail "cannot list the criu tar $dg of $1"
  sed 's#^\./##' <<<"$files" | grep . | sort
}
# ------------------------------------------------------------------ A/B
scn_ctr_checkpoint_task() {
  local id ref; id=$(uid ck); ref=localhost/ck-$id:1
  c_run_d "$id" sh -c "$COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  must ctr c checkpoint --task "$id" "$ref" >/dev/null
  echo "status after checkpoint: $(c_status "$id")"
  expect_counting "$id"
  local files; files=$(criu_blob_files "$ref") || exit 1
  echo "criu images: $(grep -cE '^(inventory|pstree)\.img$' <<<"$files") of inventory/pstree; pages: $(grep -c '^pages-' <<<"$files")"
  expect_eq "inventory.img and pstree.img in the criu tar" 2 "$(grep -cE '^(inventory|pstree)\.img$' <<<"$files")"
  ! grep -q / <<<"$files" || fail "image set is not flat: $(grep / <<<"$files" | head -n 5 | tr '\n' ' ')"
  must ctr images rm "$ref" >/dev/null
}
t_ctr_checkpoint_task() { run_cr scn_ctr_checkpoint_task; }

scn_ctr_checkpoint_rw_image() {
  local id ref; id=$(uid ckrw); ref=localhost/ckrw-$id:1
  c_run_d "$id" sh -c "echo data > /state; $COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  must ctr c checkpoint --task --rw --image "$id" "$ref" >/dev/null
  echo "status: $(c_status "$id")"
  expect_counting "$id"
  local idx layers
  # the checkpoint index's entries (containerd 1.7's ctr has no `images inspect`)
  idx=$(ctr images ls | awk -v r="$ref" '$1 == r {print $3}')
  [ -n "$idx" ] || fail "no checkpoint image $ref"
  layers=$(must ctr content get "$idx" | jq -r '.manifests[].mediaType' | grep -oE 'checkpoint\.(criu\.tar|rw\.tar|config\.v1\+proto)|rootfs\.diff\.tar|image\.rootfs\.diff' | sort -u | tr '\n' ' ')
  echo "layers: $layers"
  [[ $layers == *criu.tar* ]] || fail "no criu tar among the checkpoint's layers: $layers"
  must ctr images rm "$ref" >/dev/null
}
t_ctr_checkpoint_rw_image() { run_cr scn_ctr_checkpoint_rw_image; }

scn_ctr_task_checkpoint() {
  local id dir; id=$(uid tck); dir=$E2E_CASE_DIR/images-$RT
  # Host network, a port per runtime: ctr's own network namespace has its loopback down.
  local port; port=$([ "$RT" = runc ] && echo 18081 || echo 18082)
  track_ctr "$id"
  # The buffer is in a tmpfs of the container's own (as ctr's /dev/shm is under runc; on
  # Kata /dev/shm is the sandbox's, bound from outside the container: an external mount
  # whose contents no dump carries, integration/kata/README.md "Open").
  must ctr run -d "${E2E_DETACHED_IO[@]}" --net-host --runtime "$(rt_ctr)" \
    --mount type=tmpfs,src=tmpfs,dst=/buf,options=size=80m \
    "$IMG" "$id" sh -c "$(rich "$port" /buf)" >/dev/null
  wait_status "$id" RUNNING
  # the counter starts once the buffer is written and the server listens
  wait_counting "$id"
  must ctr t checkpoint --image-path "$dir" "$id" >/dev/null
  echo "status: $(c_status "$id")"
  expect_counting "$id"
  echo "files: inventory=$(test -f "$dir/inventory.img" && echo yes) pstree=$(test -f "$dir/pstree.img" && echo yes) subdirs=$(find "$dir" -mindepth 1 -type d | count) non-regular=$(find "$dir" -mindepth 1 ! -type f | count)"
  # the 64 MiB buffer lives in a tmpfs: its bytes are in the image set
  local sz; sz=$(du -sm "$dir" | cut -f1)
  [ "$sz" -ge 64 ] || fail "image set is $sz MiB, the 64 MiB tmpfs buffer is missing"
  # (the ping is sent from inside: an exec whose stdin ends at once can hang the Kata
  # shim, see lib.sh's ctr; nc -w bounds it)
  local answer; answer=$(ctr t exec --exec-id "n$RANDOM" "$id" sh -c "echo ping | nc -w 2 127.0.0.1 $port" 2>/dev/null | head -1)
  echo "tcp server answers: $answer"
  expect_eq "the tcp echo server after the checkpoint" ping "$answer"
}
t_ctr_task_checkpoint() { needs checkpoint-options; run_cr scn_ctr_task_checkpoint; }

scn_ctr_checkpoint_exit() {
  local id dir; id=$(uid ckx); dir=$E2E_CASE_DIR/images-$RT
  c_run_d "$id" sh -c "$COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  must ctr t checkpoint --exit --image-path "$dir" "$id" >/dev/null
  wait_status "$id" STOPPED
  echo "status after checkpoint --exit: $(c_status "$id")"
  echo "inventory: $(test -f "$dir/inventory.img" && echo yes)"
  [ -f "$dir/inventory.img" ] || fail "no inventory.img in $dir"
  echo "delete: $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
}
t_ctr_checkpoint_exit() { needs checkpoint-options; run_cr scn_ctr_checkpoint_exit; }

scn_cri_checkpoint_export() {
  local pod c d=$E2E_CASE_DIR tar
  pod_json "$(uid pod)" "$d/pod.$RT.json"
  # kubelet's default pid mode (CONTAINER): CRI's enum default shares the pod's, whose
  # checkpoint kata-cr refuses (restore.sh, the shared pid namespace cases)
  ctr_json ck "$d/c.$RT.json" "$COUNTER"
  pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod.$RT.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.$RT.json" "$d/pod.$RT.json") || exit 1
  must crictl start "$c" >/dev/null
  poll 15 cri_counter_above "$c" 0 || fail "the counter never started"
  tar=$d/ck-$RT.tar
  must crictl checkpoint --export="$tar" "$c" >/dev/null
  echo "state after: $(crictl inspect "$c" | jq -r .status.state)"
  local a; a=$(cri_counter "$c")
  [ -n "$a" ] || fail "no counter after the CRI checkpoint"
  poll 5 cri_counter_above "$c" "$a" || fail "counter not moving after CRI checkpoint ($a -> $(cri_counter "$c"))"
  local entries; entries=$(tar -tf "$tar") || fail "cannot list $tar"
  # dump.log and stats-dump are optional diagnostics: containerd 2.1.9+ has runc's criu
  # write them straight into its archive dir and gives other runtimes no such path
  # (kata-cr also leaves them in the CRI state dir, where 2.1.0-2.1.8 read them).
  echo "archive top level: $(sed 's#^\./##; s#/.*##' <<<"$entries" | grep . | grep -vxE 'dump\.log|stats-dump' | sort -u | tr '\n' ' ')"
  echo "checkpoint/: inventory=$(grep -c 'checkpoint/inventory\.img$' <<<"$entries") pstree=$(grep -c 'checkpoint/pstree\.img$' <<<"$entries") pages=$(grep -c 'checkpoint/pages-.*\.img$' <<<"$entries" | sed 's/^[1-9][0-9]*$/some/') nested=$(grep -c '^\(\./\)\?checkpoint/[^/]*/.' <<<"$entries")"
  expect_eq "checkpoint/inventory.img in the archive" 1 "$(grep -c 'checkpoint/inventory\.img$' <<<"$entries")"
  expect_eq "directories nested in checkpoint/" 0 "$(grep -c '^\(\./\)\?checkpoint/[^/]*/.' <<<"$entries")"
  must crictl rmp -f "$pod" >/dev/null
}
t_cri_checkpoint_export() { needs cri-checkpoint; run_cr scn_cri_checkpoint_export; }

# The shape of what a checkpoint leaves, A/B, file by file (contents of criu's images
# aside): the CRI archive (`crictl checkpoint --export`, the layer of an OCI checkpoint
# image too), the metadata files' keys, what checkpointctl reads, and the criu tar of a
# `ctr c checkpoint` image. criu names images by pid or namespace id: those are N here.
norm_entries() {
  sed -E 's#^\./##; /^$/d; s#/$##; s#-[0-9]+((\.tar\.gz)?\.img)$#-N\1#' | sort -u | kata_env_images
}
# In the --kata bed runc runs on the host and kata-cr in a Kata guest, whose container
# environment adds images of its own to the same workload's dump: utsns-N.img (Kata
# gives every container the sandbox's UTS namespace; a host-network pod under runc has
# the host's, which criu does not dump) and pipes-data.img (bytes sitting in the Kata
# agent's stdio pipes at the dump). They say nothing of where kata-cr puts runc's files.
kata_env_images() {
  if on_kata; then grep -vE '(^|/)(utsns-N|pipes-data)\.img$'; else cat; fi
}
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
  must crictl start "$c" >/dev/null
  wait_cri_state "$c" CONTAINER_RUNNING
  poll 15 cri_counter_above "$c" 0 || fail "the counter never started"
  tar=$d/ck-$RT.tar
  must crictl checkpoint --export="$tar" "$c" >/dev/null
  local entries keys
  entries=$(tar -tf "$tar") || fail "cannot list $tar"
  echo "CRI archive:"
  norm_entries <<<"$entries" | sed 's/^/  /'
  for f in config.dump spec.dump status.dump status; do
    keys=$(tar -xOf "$tar" "$f" | json_keys)
    [ -n "$keys" ] || fail "no $f (or not JSON) in the archive"
    echo "$f keys: $keys"
  done
  out=$(must checkpointctl show "$tar") || exit 1
  echo "checkpointctl show: $(grep -c "${c:0:12}" <<<"$out") row for the container"
  out=$(must checkpointctl inspect --stats "$tar") || exit 1
  echo "checkpointctl inspect --stats: $(grep -oiE '(freezing|frozen|memdump|memwrite) time|pages (scanned|written)' <<<"$out" | sort -u | tr '\n' ',')"
  # checkpointctl counts everything under checkpoint/ as the checkpoint's size
  expect_eq "criu's log and statistics among the images" "" "$(norm_entries <<<"$entries" | grep -E '^checkpoint/(dump\.log|stats-dump)$')"
  must crictl rmp -f "$pod" >/dev/null
  id=$(uid ctrck); ref=localhost/ctrck-$id:1
  c_run_d "$id" sh -c "$COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  must ctr c checkpoint --task "$id" "$ref" >/dev/null
  # The one designed difference (README): a network namespace of the container's own
  # that no path names is external to kata-cr's dump (the restored workload joins the
  # new container's), so its image marks it (netns-N.img); runc's has none there.
  echo "ctr c checkpoint image, criu tar:"
  local files; files=$(criu_blob_files "$ref") || exit 1
  norm_entries <<<"$files" | grep -vx 'netns-N\.img' | sed 's/^/  /'
  must ctr images rm "$ref" >/dev/null
}
t_archive_shape() { needs cri-checkpoint; run_vs_runc scn_archive_shape; }

# ------------------------------------------------------------------ kata-cr only
t_no_debris_after_three() {
  needs checkpoint-options
  RT=kata-cr
  local id up i; id=$(uid deb)
  c_run_d "$id" sh -c "$COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  up=$(upperdir_of "$id"); [ -n "$up" ] || fail "no upperdir for $id"
  for i in 1 2 3; do
    sleep 1.1 # ctr names the checkpoint image by the second
    must ctr t checkpoint --image-path "$E2E_CASE_DIR/i$i" "$id" >/dev/null
    [ -f "$E2E_CASE_DIR/i$i/inventory.img" ] || fail "checkpoint $i: no inventory.img"
  done
  expect_counting "$id"
  # No trace: neither in the upperdir (what a rootfs diff carries) nor in the container.
  expect_eq "kata-cr entries in the upperdir" "" "$(ls -A "$up" | grep '^\.kata-cr')"
  expect_eq "kata-cr entries seen by the container" "" "$(ctr t exec --exec-id "l$RANDOM" "$id" ls -A / | grep '^\.kata-cr')"
  info "upperdir after 3 checkpoints: $(cd "$up" && find . -mindepth 1 | tr '\n' ' ')"
}

t_agent_unreachable() {
  needs checkpoint-options
  RT=kata-cr
  local id out where=$AGENT_SOCK; id=$(uid noag)
  if on_kata; then
    # kata-cr-agent runs in the guest: kata-cr is pointed at a hybrid vsock nobody serves
    where=/run/kata-cr-remote-hypervisor/nowhere/vm.vsock
    put_file /etc/kata-cr/config.toml "$(sed 's#^remote_hybrid_vsock = .*#remote_hybrid_vsock = "'"$where"'"#' /etc/kata-cr/config.toml)"
  fi
  c_run_d "$id" sh -c "$COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  if ! on_kata; then
    # the agent comes back whatever happens (the case's own cleanup still runs)
    trap 'restart_agent; e2e_cleanup' EXIT
    stop_agent
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
  needs checkpoint-options
  RT=kata-cr
  # criu cannot dump a process holding a tty it does not know of: run the counter on a
  # terminal (ctr run -t under script) and checkpoint without shell-job support.
  local id out up; id=$(uid crf)
  track_ctr "$id"
  script -qec "ctr run -t --runtime $(rt_ctr) $IMG $id sh -c '$COUNTER'" /dev/null </dev/null >/dev/null 2>&1 &
  track_pid $!
  # (in the background: on Kata the task shows up once its VM has booted)
  wait_status "$id" RUNNING "$E2E_TASK_UP_SECS"
  wait_counting "$id"
  if out=$(ctr t checkpoint --image-path "$E2E_CASE_DIR/img" "$id" 2>&1); then
    info "criu dumped a tty-attached workload; no criu failure to observe with this workload"
    fail "expected criu to fail on a foreign tty"
  fi
  info "error: $(head -c 600 <<<"$out")"
  grep -qi "criu" <<<"$out" || fail "error does not carry criu's words: $out"
  expect_eq "status after the failed checkpoint" RUNNING "$(c_status "$id")"
  expect_counting "$id"
  up=$(upperdir_of "$id"); [ -n "$up" ] || fail "no upperdir for $id"
  expect_eq "kata-cr entries left in the rootfs" "" "$(ls -A "$up" | grep '^\.kata-cr')"
  [ -z "$(find "$E2E_CASE_DIR/img" -mindepth 1 2>/dev/null)" ] || fail "partial images left in the request path"
}

t_concurrent_checkpoints() {
  needs checkpoint-options
  RT=kata-cr
  local id r1 r2; id=$(uid conc)
  c_run_d "$id" sh -c "$RICH"
  wait_status "$id" RUNNING
  # a slow dump (the 64 MiB buffer is written before the counter starts)
  wait_counting "$id"
  ctr t checkpoint --image-path "$E2E_CASE_DIR/a" "$id" >"$E2E_CASE_DIR/a.out" 2>&1 & local p1=$!
  ctr t checkpoint --image-path "$E2E_CASE_DIR/b" "$id" >"$E2E_CASE_DIR/b.out" 2>&1 & local p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  info "first: exit $r1 $(head -c 300 "$E2E_CASE_DIR/a.out"); second: exit $r2 $(head -c 300 "$E2E_CASE_DIR/b.out")"
  [ "$r1" = 0 ] || [ "$r2" = 0 ] || fail "neither checkpoint succeeded"
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    # refused by kata-cr (ABORTED: the container is already checkpointing) or, before
    # it, by ctr's pause of the task the other checkpoint paused (runc's shim: "cannot
    # pause a paused container"; Kata's: "Container not running, impossible to pause")
    grep -qE "aborted: .*(already in progress|invalid state transition from checkpointing)|cannot pause a paused container|Container not running, impossible to pause" \
      "$E2E_CASE_DIR/a.out" "$E2E_CASE_DIR/b.out" \
      || fail "the refused one does not say why: $(cat "$E2E_CASE_DIR/a.out" "$E2E_CASE_DIR/b.out")"
  fi
  poll 5 _status_is "$id" RUNNING || fail "status $(c_status "$id") after concurrent checkpoints"
  expect_counting "$id"
}

t_planted_kata_cr() {
  needs checkpoint-options
  RT=kata-cr
  local id out up; id=$(uid plant)
  mkdir -p /tmp/host-target && echo untouched >/tmp/host-target/marker
  # The container plants /.kata-cr (the old fixed name) as a symlink to a
  # host-looking path, and a fifo beside it: the checkpoint goes on in a
  # directory of its own, following nothing. (hardening.sh plants more.)
  c_run_d "$id" sh -c "ln -s /tmp/host-target /.kata-cr && mkfifo /fifo; $COUNTER"
  wait_status "$id" RUNNING
  wait_counting "$id"
  up=$(upperdir_of "$id"); [ -n "$up" ] || fail "no upperdir for $id"
  out=$(ctr t checkpoint --image-path "$E2E_CASE_DIR/img" "$id" 2>&1) || fail "checkpoint with a planted .kata-cr failed: $out"
  [ -f "$E2E_CASE_DIR/img/inventory.img" ] || fail "no inventory.img in the checkpoint"
  expect_eq "host file" untouched "$(cat /tmp/host-target/marker)"
  expect_eq "host dir entries" marker "$(ls -A /tmp/host-target)"
  expect_eq "the planted link" /tmp/host-target "$(readlink "$up/.kata-cr")"
  expect_eq "kata-cr directories left in the upperdir" "" "$(cd "$up" && ls -A | grep '^\.kata-cr-')"
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
  case_ "kata-cr: a planted .kata-cr symlink neither blocks nor is followed" t_planted_kata_cr
}

e2e_main
