# ckpt — top-level entry points. `make demo` and `make test` do all set-up on
# a fresh Debian 12 machine (apt-get), then build and run.
JOBS ?= $(shell nproc)
CROSS_PRESETS ?= windows-x64 linux-s390x linux-aarch64 linux-i686
CTEST_ARGS ?=

.PHONY: all deps build cross cross-test asan fuzz test test-unit test-fast check-format demo bench format clean

all: build

deps:
	@scripts/install-deps.sh

# Native release build: CLI at build/bin/ckpt.
build: deps
	@cmake --preset release >/dev/null
	@cmake --build build -j $(JOBS)

# Windows x64 (MinGW-w64), Linux s390x, aarch64 and i686 builds of the
# library, the CLI and the examples, under build/<preset>/bin.
cross: deps
	@for p in $(CROSS_PRESETS); do \
	  cmake --preset $$p >/dev/null && cmake --build build/$$p -j $(JOBS) || exit 1; \
	done

# Debug build with AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build build/asan -j $(JOBS)

# libFuzzer target for the image reader (clang).
fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build build/fuzz -j $(JOBS) --target fuzz_image_reader

# What the tests run of the cross builds: everything for Windows and s390x
# (their ckpt CLI runs in the tests), the library and the programs for
# aarch64 and i686 (`make cross` builds their CLI too).
TEST_CROSS_FULL ?= windows-x64 linux-s390x
TEST_CROSS_PROGRAMS ?= linux-aarch64 linux-i686
cross-test: deps
	@for p in $(TEST_CROSS_FULL); do \
	  cmake --preset $$p >/dev/null && cmake --build build/$$p -j $(JOBS) || exit 1; \
	done
	@for p in $(TEST_CROSS_PROGRAMS); do \
	  cmake --preset $$p >/dev/null && cmake --build build/$$p -j $(JOBS) --target ckpt_examples || exit 1; \
	done

# Every test: unit, end-to-end, heterogeneous (Wine, qemu), engine; the
# sanitizer build's suites; a bounded fuzzing run.
test: build cross-test asan fuzz
	@scripts/run-tests.sh $(CTEST_ARGS)

# Only the native unit tests.
test-unit: build
	@ctest --test-dir build -L unit --output-on-failure -j $(JOBS)

# The fast tier: formatting, clang-tidy on the changed files, unit tests
# (scripts/test-fast.sh; BASE=<rev> sets what "changed" is measured from).
test-fast: build
	@scripts/test-fast.sh $(BASE)

# Formatting only (seconds): what .ci/run checks before `make test`.
check-format: deps
	@scripts/check-format.sh

demo: build cross
	@scripts/demo.sh

bench: build cross
	@scripts/bench.sh

format:
	@git ls-files '*.cc' '*.h' '*.hpp' | xargs clang-format -i

clean:
	@rm -rf build
