#!/usr/bin/env bash
# The benchmark, run inside the test bed (make bench runs it, then the report):
#   integration/testbed run -- integration/bench/run.sh
#   target/x86_64-unknown-linux-gnu/release/kata-cr-bench report --dir target/bench-report
# Each section (integration/bench/sections/*.sh) measures runc and kata-cr (or
# the proxy and its floor) in this one run, and appends its measurements to
# $BENCH_OUT/raw.tsv (see src/record.rs); the report turns them into the table
# and the plots. Figures, not pass/fail: the targets live in the report.
#
# Environment: BENCH_OUT (default <repo>/target/bench-report), BENCH_SECTIONS
# (default: rpc start sizes cri pods), BENCH_REV (the commit, for the history),
# and each section's counts (BENCH_RPCS, BENCH_SIZES, BENCH_CHECKPOINTS, ...).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
# shellcheck source=integration/bench/lib.sh
source "$here/lib.sh"
BENCH=${KATA_CR_BIN_DIR:-$repo/target/x86_64-unknown-linux-gnu/release}/kata-cr-bench
SUITES=$repo/integration/suites
OUT=${BENCH_OUT:-$repo/target/bench-report}
SECTIONS=${BENCH_SECTIONS:-rpc start sizes cri pods}
[ -x "$BENCH" ] || die "$BENCH missing (make build)"

mkdir -p "$OUT"
rm -f "$OUT/raw.tsv" "$OUT/meta.tsv" "$OUT/rpc-samples.tsv" "$OUT/failures.txt" "$OUT/.cleanup"
trap cleanup_all EXIT
load() { cut -d' ' -f1-3 /proc/loadavg; }
meta started "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
meta rev "${BENCH_REV:-unknown}"
meta containerd "$(containerd --version | awk '{print $3}')"
meta runc "$(runc --version | awk 'NR == 1 {print $3}')"
meta criu "$(criu --version | awk 'NR == 1 {print $2}')"
meta kernel "$(uname -r)"
meta cores "$(nproc)"
meta load_start "$(load)"
for s in $SECTIONS; do
  [ -f "$here/sections/$s.sh" ] || die "no section $s (integration/bench/sections/$s.sh)"
  say "section $s (load $(load))"
  # shellcheck disable=SC1090 # one file per section
  ( source "$here/sections/$s.sh" ) || die "section $s failed"
done
meta load_end "$(load)"
meta duration_s "$SECONDS"
say "done in ${SECONDS}s: $OUT/raw.tsv"
