# Checkpoint and restore against dirty memory (ctr), runc and kata-cr side by side:
# both workloads run at once and take turns, so that both see the same machine.
# Also: dd of the same size into the same filesystem (the page cache's write
# bandwidth), and at 1 GiB the proxy's staging on the ctr paths.
SIZES=${BENCH_SIZES:-counter 1 16 256 1024}
CK=${BENCH_CHECKPOINTS:-3}
RS=${BENCH_RESTORES:-3}
mkdir -p "$WORK" "$OTHER"
# ctr names a checkpoint image by its container and the second; `ctr t
# checkpoint --image-path` also makes one for any runtime but runc's (the
# client skips it only for io.containerd.runc.v2): one checkpoint of a
# container per second, and their images removed.
gap() { # gap ID (kept in a file: callers run in subshells)
  local f=$OUT/.last-checkpoint-$1
  sleep "$(awk -v l="$(cat "$f" 2>/dev/null || echo 0)" -v n="$EPOCHREALTIME" 'BEGIN{w=l+1.05-n; printf "%.3f", (w>0)?w:0}')"
  echo "$EPOCHREALTIME" >"$f"
}
rm_checkpoint_images() {
  ctr -n $NS images ls -q | grep '^containerd.io/checkpoint/bench-' | while read -r ref; do
    ctr -n $NS images rm "$ref" >/dev/null || die "ctr images rm $ref failed"
  done
}
checkpoint_once() { # checkpoint_once ID DIR -> seconds
  local t0 s
  gap "$1"
  rm -rf "$2"
  t0=$EPOCHREALTIME
  ctr -n $NS t checkpoint --image-path "$2" "$1" >/dev/null || return 1
  s=$(since "$t0")
  [ -f "$2/inventory.img" ] || { echo "no inventory.img in $2" >&2; return 1; }
  echo "$s"
}
checkpoint_to() { attempt "ctr t checkpoint $1" checkpoint_once "$1" "$2"; }

for w in $SIZES; do
  say "checkpoint and restore: $w"
  declare -A cid=()
  for rt in runc kata-cr; do
    cid[$rt]=bench-sz-$w-$rt-$$
    start_workload "$rt" "${cid[$rt]}" "$w"
  done
  for rt in runc kata-cr; do wait_ready "${cid[$rt]}" "$w"; done

  for i in $(seq 1 "$CK"); do
    for rt in runc kata-cr; do
      dir=$WORK/${cid[$rt]}-$i
      mark=$(log_mark)
      record ckpt.s "$rt" "$w" "$i" "$(checkpoint_to "${cid[$rt]}" "$dir")"
      if [ "$rt" = kata-cr ] && [ "$w" = 1024 ]; then
        record stage.ms kata-cr ctr-image-path "$i" "$(stage_ms "$mark" "${cid[$rt]}" checkpoint)"
      fi
      rm -rf "$dir"
    done
    if [ "$w" != counter ]; then
      t0=$EPOCHREALTIME
      dd if=/dev/zero of="$WORK/dd" bs=1M count="$w" status=none || die "dd of $w MiB into $WORK failed"
      record dd.mibps dd "$w" "$i" "$(mib_per_s "$w" "$(since "$t0")")"
      rm -f "$WORK/dd"
    fi
    if [ "$w" = 1024 ]; then
      dir=$OTHER/${cid[kata-cr]}-$i
      mark=$(log_mark)
      checkpoint_to "${cid[kata-cr]}" "$dir" >/dev/null
      record stage.ms kata-cr ctr-image-path-other "$i" "$(stage_ms "$mark" "${cid[kata-cr]}" checkpoint)"
      rm -rf "$dir"
    fi
  done

  for i in $(seq 1 "$RS"); do
    for rt in runc kata-cr; do
      id=${cid[$rt]} ref=localhost/bench-$rt-$w:$i
      gap "$id"
      mark=$(log_mark)
      t0=$EPOCHREALTIME
      attempt "ctr c checkpoint --task $id" ctr -n $NS c checkpoint --task "$id" "$ref" >/dev/null
      if [ "$rt" = kata-cr ] && [ "$w" = 1024 ]; then
        record stage.ms kata-cr ctr-task "$i" "$(stage_ms "$mark" "$id" checkpoint)"
      fi
      rm_ctr "$id"
      mark=$(log_mark)
      t1=$EPOCHREALTIME
      ctr -n $NS c restore --live "$id" "$ref" >/dev/null || die "ctr c restore --live $id ($rt) failed"
      t2=$EPOCHREALTIME
      [ "$(task_status "$id")" = RUNNING ] || die "$id ($rt) is not running after its restore"
      record restore.s "$rt" "$w" "$i" "$(since "$t1")"
      record roundtrip.s "$rt" "$w" "$i" "$(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.6f", b-a}')"
      if [ "$rt" = kata-cr ] && [ "$w" = 1024 ]; then
        record stage.ms kata-cr restore-ctr "$i" "$(stage_ms "$mark" "$id" restore)"
      fi
      ctr -n $NS images rm "$ref" >/dev/null 2>&1 || true
    done
  done
  for rt in runc kata-cr; do rm_ctr "${cid[$rt]}"; rm -f "$OUT/.last-checkpoint-${cid[$rt]}"; done
  rm_checkpoint_images
done
