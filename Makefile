# kata-cr: build, test, install.
#   make demo     set up the local test bed and run a live checkpoint -> restore through kata-cr
#   make test     every test: format, lints, unit tests, end-to-end suites in the test bed,
#                 the real kubelet A/B (make kubelet-test), the Kata side in a real VM
#                 (make vm-test)
#   make bench    the benchmark report: figures against vanilla runc measured in the same run,
#                 a table and plots in target/bench-report/ (integration/bench)
#   make install  binaries and configs onto this host (DESTDIR/PREFIX honoured)
#   make guest-image ROOTFS_DIR=DIR | GUEST_IMAGE=FILE | GUEST_INITRD=FILE [CRIU_DEBS=DIR]
#                 criu and kata-cr-agent into a Kata guest (guest-overlay/README.md)

CARGO    ?= cargo
TARGET   := x86_64-unknown-linux-gnu
RELEASE  := target/$(TARGET)/release
# Static binaries: kata-cr-init runs inside container rootfses without a libc,
# and the test bed's glibc differs from the build host's.
STATIC   := RUSTFLAGS='-C target-feature=+crt-static'
BINS     := containerd-shim-kata-cr-v2 kata-cr-init kata-cr-agent crictl kata-cr-bench
PREFIX   ?= /usr/local
DESTDIR  ?=
TESTBED  := integration/testbed

.PHONY: all build deps fmt-check clippy unit e2e kubelet-test vm-test install-test test bench demo install clean guest-image guest-overlay-test

all: build

deps:
	bash integration/deps.sh

build:
	$(STATIC) $(CARGO) build --release --target $(TARGET) --workspace

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# As root, also the tests that need it (kata-cr-init as PID 1 of a pid namespace).
unit:
	$(CARGO) test --workspace $(if $(filter 0,$(shell id -u)),-- --include-ignored)

e2e: build
	$(TESTBED) run -- integration/suites/run-all

test: deps fmt-check clippy unit guest-overlay-test install-test e2e kubelet-test vm-test

# The real kubelet (../shared/kubernetes/kubelet or on PATH), standalone in the test bed,
# A/B runc vs kata-cr; without a kubelet it says SKIPPED (integration/kubelet/run).
kubelet-test: build
	integration/kubelet/run

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
