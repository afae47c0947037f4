# kata-cr: build, test, install.
#   make demo     set up the local test bed and run a live checkpoint -> restore through kata-cr
#   make test     every test: format, lints, unit tests, end-to-end suites in the test bed
#                 on containerd 2.x and what differs on 1.7 (make e2e-1.7), the real kubelet
#                 A/B (make kubelet-test), the same suites against the real Kata (make kata-e2e,
#                 and the kubelet suite: make kubelet-kata-test, when Kata's binaries are
#                 found), the Kata side in a real VM (make vm-test)
#   make bench    the benchmark report: figures against vanilla runc measured in the same run,
#                 a table and plots in target/bench-report/ (integration/bench)
#   make fuzz     longer runs of the property tests of untrusted-input parsers (FUZZ_CASES)
#   make install  binaries and configs onto this host (DESTDIR/PREFIX honoured)
#   make guest-image ROOTFS_DIR=DIR | GUEST_IMAGE=FILE | GUEST_INITRD=FILE [CRIU_DEBS=DIR]
#                 criu and kata-cr-agent into a Kata guest (guest-overlay/README.md)

CARGO    ?= cargo
TARGET   := x86_64-unknown-linux-gnu
RELEASE  := target/$(TARGET)/release
# Static binaries: kata-cr-init runs inside container rootfses without a libc,
# and the test bed's glibc differs from the build host's.
STATIC   := RUSTFLAGS='-C target-feature=+crt-static'
BINS     := containerd-shim-kata-cr-v2 kata-cr-init kata-cr-agent crictl kata-cr-bench kata-cr-task
PREFIX   ?= /usr/local
DESTDIR  ?=
TESTBED  := integration/testbed
# Kata's binaries for the real-Kata suites (kata-e2e): KATA_DIR, else ../shared/kata beside
# the repo; the bed itself also looks for a Kata installed on the host (/opt/kata).
KATA_DIR ?= $(if $(wildcard $(abspath ../shared/kata)/containerd-shim-kata-v2),$(abspath ../shared/kata))
SUMMARY  := target/test-summary
SHELL    := /bin/bash

.PHONY: all build deps fmt-check clippy unit harness-test fuzz e2e e2e-1.7 kubelet-test kubelet-kata-test kata-e2e vm-test install-test test bench demo install clean guest-image guest-overlay-test

all: build

deps:
	bash integration/deps.sh

build:
	$(STATIC) $(CARGO) build --release --target $(TARGET) --workspace

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every unit test, those that need root too (kata-cr-init as PID 1 of a pid
# namespace, capability sets): without root they fail, saying so, rather than
# being skipped. make test runs as root.
# The property tests of parsers of untrusted input (<crate>/tests/fuzz_*.rs,
# functions fuzz_*) run here with proptest's default 256 cases each, replaying
# <crate>/proptest-regressions/ first.
unit:
	@[ "$$(id -u)" = 0 ] || echo "make unit: not root: the tests that need root will fail (run it as root)" >&2
	$(CARGO) test --workspace -- --include-ignored

# The suites' harness on deliberately failing checks (seconds; no bed needed).
harness-test:
	integration/suites/harness-test

# The same property tests, longer: FUZZ_CASES cases each (about 2 minutes at 20000).
FUZZ_CASES ?= 20000
fuzz:
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --workspace --tests fuzz_

e2e: build
	@mkdir -p $(SUMMARY)
	set -o pipefail; $(TESTBED) run -- integration/suites/run-all | tee $(SUMMARY)/e2e.log

# containerd 1.7 (Debian trixie's, KATA_CR_CONTAINERD=1.7): what differs from 2.x, i.e. the
# conformance suite and the ctr checkpoint/restore flows; the cases that need what only 2.x
# has (CRI checkpoint/restore, checkpoint options for non-runc runtimes) skip, saying why.
E2E_17_SUITES := conformance checkpoint restore readonly
e2e-1.7: build
	@mkdir -p $(SUMMARY)
	set -o pipefail; KATA_CR_CONTAINERD=1.7 $(TESTBED) run -- integration/suites/run-all \
		$(E2E_17_SUITES:%=integration/suites/%.sh) | tee $(SUMMARY)/e2e-1.7.log

# The suites against the real, unmodified Kata (integration/kata/README.md): A/B kata vs
# kata-cr, checkpoint/restore under kata-cr. Without Kata's binaries they do not run, and
# the summary of make test says so. Every case boots one or two qemu TCG guests (about a
# minute each on 2 cores): make test runs the checkpoint suite there (KATA_E2E_SUITES);
# `make kata-e2e KATA_E2E_SUITES=restore` runs the restore suite (its cases green one by one
# on Kata; README, "Proven against real Kata"), and KATA_E2E_SUITES=all every
# suite (conformance A/B kata vs kata-cr too: about an hour).
KATA_E2E_SUITES ?= checkpoint
kata-e2e: build
	@mkdir -p $(SUMMARY); rm -f $(SUMMARY)/kata-e2e.log $(SUMMARY)/kata-e2e.skipped
	@if [ -n "$(KATA_DIR)" ] || [ -x /opt/kata/bin/containerd-shim-kata-v2 ]; then \
		set -o pipefail; $(TESTBED) run $(if $(KATA_DIR),--kata-dir $(KATA_DIR),--kata) -- \
			integration/suites/run-all $(if $(filter all,$(KATA_E2E_SUITES)),,$(KATA_E2E_SUITES:%=integration/suites/%.sh)) \
			| tee $(SUMMARY)/kata-e2e.log; \
	else \
		echo "kata-e2e: NOT RUN: no Kata binaries (KATA_DIR, $(abspath ../shared/kata), /opt/kata)" \
			| tee $(SUMMARY)/kata-e2e.skipped; \
	fi

test: deps fmt-check clippy unit harness-test guest-overlay-test install-test e2e e2e-1.7 kubelet-test kata-e2e kubelet-kata-test vm-test
	@echo "== make test: end-to-end summary"
	@echo "  plain bed (runc, kata-cr in front of runc): $$(tail -n 1 $(SUMMARY)/e2e.log)"
	@echo "  containerd 1.7 (runc, kata-cr): $$(tail -n 1 $(SUMMARY)/e2e-1.7.log)"
	@echo "  kubelet (runc, kata-cr): $$(tail -n 1 $(SUMMARY)/kubelet.log)"
	@if [ -f $(SUMMARY)/kubelet-kata.log ]; then \
		echo "  kubelet (runc; kata-cr in front of the real Kata): $$(tail -n 1 $(SUMMARY)/kubelet-kata.log)"; \
	else \
		echo "  kubelet on the real Kata: $$(cat $(SUMMARY)/kubelet-kata.skipped 2>/dev/null || echo 'NOT RUN')"; \
	fi
	@if [ -f $(SUMMARY)/kata-e2e.log ]; then \
		echo "  real Kata (kata, kata-cr in front of Kata; suites: $(KATA_E2E_SUITES)): $$(tail -n 1 $(SUMMARY)/kata-e2e.log)"; \
	else \
		echo "  real Kata: $$(cat $(SUMMARY)/kata-e2e.skipped 2>/dev/null || echo 'NOT RUN')"; \
	fi

# The real kubelet (../shared/kubernetes/kubelet or on PATH), standalone in the test bed,
# A/B runc vs kata-cr; without a kubelet it says SKIPPED (integration/kubelet/run).
kubelet-test: build
	@mkdir -p $(SUMMARY)
	set -o pipefail; integration/kubelet/run | tee $(SUMMARY)/kubelet.log

# The kubelet suite with kata-cr in front of the real Kata (runc's bed stays plain: the
# A/B table compares kata-cr on Kata with runc). Skipped, saying so, without Kata.
kubelet-kata-test: build
	@mkdir -p $(SUMMARY); rm -f $(SUMMARY)/kubelet-kata.log $(SUMMARY)/kubelet-kata.skipped
	@if [ -n "$(KATA_DIR)" ] || [ -x /opt/kata/bin/containerd-shim-kata-v2 ]; then \
		set -o pipefail; integration/kubelet/run $(if $(KATA_DIR),--kata-dir $(KATA_DIR),--kata) runc kata-cr \
			| tee $(SUMMARY)/kubelet-kata.log; \
	else \
		echo "kubelet-kata-test: NOT RUN: no Kata binaries (KATA_DIR, $(abspath ../shared/kata), /opt/kata)" \
			| tee $(SUMMARY)/kubelet-kata.skipped; \
	fi

# make install into a scratch DESTDIR: what lands where, and a second run
# keeps an operator's edited config.
install-test: build
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	$(MAKE) -s install DESTDIR=$$d >/dev/null && \
	for f in $(PREFIX)/bin/containerd-shim-kata-cr-v2 $(PREFIX)/bin/kata-cr-init $(PREFIX)/bin/kata-cr-agent; do \
		test -x "$$d$$f" || { echo "install-test: $$f missing"; exit 1; }; done && \
	cmp -s configs/kata-cr.toml $$d/etc/kata-cr/config.toml && \
	echo '# edited' >>$$d/etc/kata-cr/config.toml && $(MAKE) -s install DESTDIR=$$d >/dev/null && \
	grep -q '# edited' $$d/etc/kata-cr/config.toml && \
	$$d$(PREFIX)/bin/containerd-shim-kata-cr-v2 doctor --help >/dev/null && \
	echo "install-test: ok"

# The Kata side in a real VM: qemu TCG, hybrid vsock, virtio-fs (integration/vm).
vm-test: build
	integration/vm/run -- integration/vm/proof.sh

# The benchmark report (integration/bench): measured in the test bed, then the table
# (printed, and target/bench-report/report.md) and its plots, made here on the host.
BENCH_OUT := target/bench-report
bench: deps build
	BENCH_REV=$$(git rev-parse --short HEAD)$$(git diff --quiet HEAD -- . || echo -dirty) \
		$(TESTBED) run -- integration/bench/run.sh
	$(RELEASE)/kata-cr-bench report --dir $(BENCH_OUT)

demo: deps build
	$(TESTBED) run -- integration/demo.sh

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/kata-cr
	install -m 0755 $(RELEASE)/containerd-shim-kata-cr-v2 $(RELEASE)/kata-cr-init \
		$(RELEASE)/kata-cr-agent $(DESTDIR)$(PREFIX)/bin/
	test -e $(DESTDIR)/etc/kata-cr/config.toml || \
		install -m 0644 configs/kata-cr.toml $(DESTDIR)/etc/kata-cr/config.toml

guest-image: build
	guest-overlay/build-guest.sh --bins $(RELEASE) $(if $(CRIU_DEBS),--debs $(CRIU_DEBS)) \
		$(if $(ROOTFS_DIR),--rootfs $(ROOTFS_DIR)) $(if $(GUEST_IMAGE),--image $(GUEST_IMAGE)) \
		$(if $(GUEST_INITRD),--initrd $(GUEST_INITRD))

guest-overlay-test:
	bash guest-overlay/tests/build-guest-test.sh

clean:
	$(CARGO) clean
