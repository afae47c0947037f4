#!/usr/bin/env bash
# Read-only root filesystems, against vanilla runc in the same run:
#   integration/testbed run -- env E2E_ONLY=readonly integration/suites/readonly.sh
# Three checkpoint/restore cycles of a container whose root is read-only, through ctr
# (`ctr run --read-only`, `ctr c checkpoint --task`, `ctr c restore --live`) and through
# CRI (`readonly_rootfs`, checkpoint --export, new pod, create from the archive). After
# every restore the container still cannot write its root: neither the restored workload
# (it probes its root all the time, and counts every write that got through, in memory, so
# that the count survives the restores) nor a process exec'd into it; the spec the inner
# runtime got keeps root.readonly; nothing the container tried to write reached the
# rootfs's writable layer on the host.
# shellcheck source=integration/suites/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

# The counter lives in /dev/shm (a tmpfs: the root is read-only) as "COUNT BREACHES": every
# round the workload tries to create /ro-probe in its root and counts the times it could.
# Both numbers live in the shell's memory: a restore that lost the process state would
# start again at 1, and a breach before a restore is still counted after it.
RO_COUNTER='i=0; b=0; trap "exit 42" TERM; while :; do i=$((i+1)); if touch /ro-probe 2>/dev/null; then b=$((b+1)); rm -f /ro-probe; fi; echo "$i $b" > /dev/shm/c.n; mv /dev/shm/c.n /dev/shm/c; sleep 0.2; done'

# What a container's processes see of their root, one line each; $1 runs a command in it.
#   workload: breaches its own probe counted (0 wanted)
#   exec:     whether an exec'd process can create a file in / (and the error it gets)
#   mount:    the root mount's ro/rw flag as an exec'd process sees it
root_view() {
  local run=$1 out rc opts
  echo "workload's writes to its root that got through: $($run cat /dev/shm/c | awk '{print $2}')"
  out=$($run sh -c 'touch /exec-probe' 2>&1); rc=$?
  [ "$rc" != 0 ] && out="refused: $(grep -o 'Read-only file system' <<<"$out" | head -n 1)" || out="allowed (exit 0)"
  echo "an exec'd process creating /exec-probe: $out"
  opts=$($run awk '$5 == "/" {print $6}' /proc/self/mountinfo | cut -d, -f1)
  echo "root mount seen by an exec'd process: $opts"
}
# The checks behind those lines, each deciding the case.
expect_read_only() { # expect_read_only RUN-COMMAND WHEN
  local run=$1 when=$2 c rc
  c=$($run cat /dev/shm/c) || fail "$when: cannot read the counter"
  expect_eq "$when: writes of the workload to its root that got through" 0 "${c#* }"
  $run sh -c 'touch /exec-probe' >/dev/null 2>&1; rc=$?
  [ "$rc" != 0 ] || fail "$when: an exec'd process created /exec-probe in the read-only root"
  expect_eq "$when: the root mount's flag seen by an exec'd process" ro \
    "$($run awk '$5 == "/" {print $6}' /proc/self/mountinfo | cut -d, -f1)"
}
counter_of() { $1 cat /dev/shm/c 2>/dev/null | awk '{print $1}'; }
expect_moved_on() { # expect_moved_on BEFORE AFTER WHEN
  [ -n "$1" ] && [ -n "$2" ] && [ "$2" -gt "$1" ] || fail "$3: counter $1 -> $2 (want it to go on)"
}

# The spec the inner runtime got (the bundle's config.json: under kata-cr the rewritten one).
bundle_readonly() { # bundle_readonly NAMESPACE ID
  jq -r '.root.readonly // false' "/run/containerd/io.containerd.runtime.v2.task/$1/$2/config.json"
}
# Files the container tried to create, found in its rootfs's writable layer on the host.
upper_probes() { # upper_probes NAMESPACE ID
  local up
  if on_kata; then # the Kata shim mounts the rootfs in its own mount namespace: ask the snapshotter
    up=$(ctr -n "$1" snapshots mounts /rootfs "$2" 2>/dev/null | grep -o 'upperdir=[^,]*' | cut -d= -f2 | head -n 1)
  else
    up=$(awk -v m="/run/containerd/io.containerd.runtime.v2.task/$1/$2/rootfs" '$5 == m {print}' /proc/self/mountinfo \
      | grep -o 'upperdir=[^,]*' | cut -d= -f2)
  fi
  [ -n "$up" ] || { echo "(no writable layer)"; return 0; }
  find "$up" -maxdepth 1 \( -name ro-probe -o -name exec-probe \) -printf '%f\n' | sort | tr '\n' ' '
}

# ------------------------------------------------------------------ ctr
ctr_exec() { ctr t exec --exec-id "r$RANDOM$RANDOM" "$CUR_ID" "$@" </dev/null; }
scn_ctr_readonly_cycles() {
  local id ref i before after
  id=$(uid ro); CUR_ID=$id
  track_ctr "$id"
  must ctr run -d "${E2E_DETACHED_IO[@]}" --read-only --runtime "$(rt_ctr)" "$IMG" "$id" sh -c "$RO_COUNTER" >/dev/null || exit 1
  wait_status "$id" RUNNING
  poll 10 eval '[ -n "$(counter_of ctr_exec)" ]' || fail "the counter never started"
  expect_read_only ctr_exec "before any checkpoint"
  echo "before any checkpoint:"; root_view ctr_exec | sed 's/^/  /'
  echo "  bundle root.readonly: $(bundle_readonly "$CTR_NS" "$id")"
  for i in 1 2 3; do
    ref=localhost/ro-$id:$i
    before=$(counter_of ctr_exec)
    must ctr c checkpoint --task "$id" "$ref" >/dev/null || exit 1
    ctr t kill -s 9 "$id" >/dev/null 2>&1; wait_status "$id" STOPPED
    must ctr t rm "$id" >/dev/null || exit 1
    must ctr c rm "$id" >/dev/null || exit 1
    must ctr c restore --live "$id" "$ref" >/dev/null || exit 1
    wait_status "$id" RUNNING
    # the counter moved on from where it was checkpointed
    wait_for 10 eval '[ "$(counter_of ctr_exec)" -gt "'"$before"'" ] 2>/dev/null' \
      || fail "cycle $i: the counter did not go on from $before within 10 s (now '$(counter_of ctr_exec)')"
    after=$(counter_of ctr_exec)
    expect_moved_on "$before" "$after" "cycle $i"
    expect_read_only ctr_exec "after restore $i"
    expect_eq "cycle $i: bundle root.readonly" true "$(bundle_readonly "$CTR_NS" "$id")"
    echo "after restore $i: counter went on"; root_view ctr_exec | sed 's/^/  /'
    echo "  bundle root.readonly: $(bundle_readonly "$CTR_NS" "$id")"
    echo "  probes in the writable layer: $(upper_probes "$CTR_NS" "$id")"
    expect_eq "cycle $i: probe files in the host's writable layer" "" "$(upper_probes "$CTR_NS" "$id")"
    ctr images rm "$ref" >/dev/null 2>&1
    sleep 1.05 # ctr names checkpoint images by the second
  done
  must ctr t kill -s TERM "$id" >/dev/null || exit 1
  wait_status "$id" STOPPED
  echo "TERM (trapped): $(ctr t rm "$id" 2>&1 | grep -o 'exit code [0-9]*')"
}
t_ctr_readonly_cycles() { needs criu-ro-root; run_vs_runc scn_ctr_readonly_cycles; }

# ------------------------------------------------------------------ CRI
cri_exec() { crictl exec -s "$CUR_ID" "$@"; }
ro_ctr_json() { # ro_ctr_json NAME FILE: the counter, readonly_rootfs
  ctr_json "$1" "$2" "$RO_COUNTER"
  jq '.linux.security_context.readonly_rootfs = true' "$2" >"$2.tmp" && mv "$2.tmp" "$2"
}
scn_cri_readonly_cycles() {
  local d=$E2E_CASE_DIR pod c i tar before after
  ro_ctr_json ro "$d/c.$RT.json"
  pod_json "$(uid pod0)" "$d/pod0.$RT.json"
  pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod0.$RT.json") || exit 1
  track_pod "$pod"
  c=$(must crictl create "$pod" "$d/c.$RT.json" "$d/pod0.$RT.json") || exit 1
  must crictl start "$c" >/dev/null || exit 1
  wait_cri_state "$c" CONTAINER_RUNNING
  CUR_ID=$c
  poll 10 eval '[ -n "$(counter_of cri_exec)" ]' || fail "the counter never started"
  expect_read_only cri_exec "before any checkpoint"
  echo "before any checkpoint:"; root_view cri_exec | sed 's/^/  /'
  echo "  bundle root.readonly: $(bundle_readonly "$CRI_NS" "$c")"
  for i in 1 2 3; do
    before=$(counter_of cri_exec)
    tar=$d/ro-$RT-$i.tar
    must crictl checkpoint --export="$tar" "$c" >/dev/null || exit 1
    must crictl rmp -f "$pod" >/dev/null || exit 1
    pod_json "$(uid "pod$i")" "$d/pod$i.$RT.json"
    pod=$(must crictl runp --runtime "$(rt_cri)" "$d/pod$i.$RT.json") || exit 1
    track_pod "$pod"
    jq --arg t "$tar" '.image.image = $t' "$d/c.$RT.json" >"$d/r.$RT.json"
    c=$(must crictl create "$pod" "$d/r.$RT.json" "$d/pod$i.$RT.json") || exit 1
    must crictl start "$c" >/dev/null || exit 1
    wait_cri_state "$c" CONTAINER_RUNNING
    CUR_ID=$c
    wait_for 10 eval '[ "$(counter_of cri_exec)" -gt "'"$before"'" ] 2>/dev/null' \
      || fail "cycle $i: the counter did not go on from $before within 10 s (now '$(counter_of cri_exec)')"
    after=$(counter_of cri_exec)
    expect_moved_on "$before" "$after" "cycle $i"
    expect_read_only cri_exec "after restore $i"
    expect_eq "cycle $i: bundle root.readonly" true "$(bundle_readonly "$CRI_NS" "$c")"
    expect_eq "cycle $i: probe files in the host's writable layer" "" "$(upper_probes "$CRI_NS" "$c")"
    echo "after restore $i: counter went on"; root_view cri_exec | sed 's/^/  /'
    echo "  bundle root.readonly: $(bundle_readonly "$CRI_NS" "$c")"
    echo "  probes in the writable layer: $(upper_probes "$CRI_NS" "$c")"
  done
  must crictl rmp -f "$pod" >/dev/null || exit 1
}
t_cri_readonly_cycles() { needs cri-checkpoint; needs criu-ro-root; run_vs_runc scn_cri_readonly_cycles; }

# ------------------------------------------------------------------ criu < 4.2
# criu before 4.2 restores the root mount writable (criu issue #2632). kata-cr refuses
# such a restore before criu runs (kata-cr-agent, readonly_root.rs): the error says why,
# the container does not come up, nothing restored is left running. What runc does with
# the same criu is recorded beside it.
t_kata_readonly_old_criu_refused() {
  ! criu_keeps_ro_root || skip "criu $E2E_CRIU_VERSION restores a read-only root read-only: nothing for kata-cr to refuse (the A/B cycles run instead)"
  local rt id ref out i
  for rt in kata-cr runc; do
    RT=$rt; id=$(uid old); ref=localhost/old-$id:1; CUR_ID=$id
    track_ctr "$id"
    must ctr run -d "${E2E_DETACHED_IO[@]}" --read-only --runtime "$(rt_ctr)" "$IMG" "$id" sh -c "$RO_COUNTER" >/dev/null || exit 1
    wait_status "$id" RUNNING
    poll 10 eval '[ -n "$(counter_of ctr_exec)" ]' || fail "[$rt] the counter never started"
    must ctr c checkpoint --task "$id" "$ref" >/dev/null || exit 1
    ctr t kill -s 9 "$id" >/dev/null 2>&1; wait_status "$id" STOPPED
    must ctr t rm "$id" >/dev/null || exit 1
    must ctr c rm "$id" >/dev/null || exit 1
    if [ "$rt" = runc ]; then
      must ctr c restore --live "$id" "$ref" >/dev/null || exit 1
      wait_status "$id" RUNNING
      sleep 0.6
      info "runc with criu $E2E_CRIU_VERSION: after the restore $(ctr_exec cat /dev/shm/c | awk '{print $2}') writes of the workload to its read-only root got through; an exec'd process creating a file in /: $(ctr_exec touch /exec-probe >/dev/null 2>&1 && echo allowed || echo refused)"
      continue
    fi
    if out=$(ctr c restore --live "$id" "$ref" 2>&1); then
      fail "kata-cr restored a read-only root with criu $E2E_CRIU_VERSION"
    fi
    info "kata-cr: $(head -c 600 <<<"$out")"
    grep -q "read-only root" <<<"$out" || fail "the error does not say the root is read-only: $out"
    grep -qF "criu $E2E_CRIU_VERSION" <<<"$out" || fail "the error does not name criu $E2E_CRIU_VERSION: $out"
    for i in $(seq 1 100); do [ "$(c_status "$id")" != RUNNING ] && break; sleep 0.1; done
    [ "$(c_status "$id")" != RUNNING ] || fail "the container runs after the refused restore"
    expect_eq "restored workload processes left anywhere" 0 "$(pgrep -f 'touch /ro-probe' | count)"
  done
}

e2e_cases() {
  case_ "A/B ctr --read-only: 3 checkpoint/restore cycles, root read-only throughout" t_ctr_readonly_cycles
  case_ "A/B CRI readonly_rootfs: 3 export/new pod/restore cycles, root read-only throughout" t_cri_readonly_cycles
  case_ "kata-cr: criu < 4.2 would restore a read-only root writable: refused" t_kata_readonly_old_criu_refused
}

e2e_main
