# zonevault: the commands a newcomer and CI use.
#   make demo   the appliance's main job end to end, on a software TPM
#   make test   fmt check, clippy -D warnings, every test
#   make bench  benchmarks against baselines (release build)
#   make image  the appliance image under images/out (release build; see images/README.md)

CARGO ?= cargo
export TSS2_LOG ?= all+none

.PHONY: deps build release test demo demo-stop bench fmt clippy clean image

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --bins

release: deps
	$(CARGO) build --release --workspace --bins

fmt:
	$(CARGO) fmt --all -- --check

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps fmt clippy build
	$(CARGO) test --workspace --no-fail-fast

demo: build
	@scripts/demo.sh

demo-stop:
	@scripts/demo-stop.sh

# Release build, then zonevault against its baselines (a few minutes; see
# bench/README.md). Flags via BENCH_ARGS, e.g. BENCH_ARGS="--only a --pairs 5".
bench: deps
	$(CARGO) build --release --workspace --bins
	$(CARGO) run --release -p bench --bin zonevault-bench -- $(BENCH_ARGS)

# The appliance image: kernel, initramfs, PKI and reference PCRs in
# images/out (a reference boot under QEMU included). IMAGE_BIN_DIR picks the
# binaries (default: the release build), IMAGE_REVISION the config revision.
IMAGE_BIN_DIR ?= target/release
IMAGE_REVISION ?= 1
image: deps
	$(if $(filter target/release,$(IMAGE_BIN_DIR)),$(CARGO) build --release --workspace --bins)
	images/build.sh --bin-dir $(IMAGE_BIN_DIR) --revision $(IMAGE_REVISION)

clean:
	$(CARGO) clean
	rm -rf demo
