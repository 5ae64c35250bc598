# Thin wrapper around CMake. `make`, `make test` and `make demo` first run
# scripts/deps.sh, so a fresh Debian 12 machine needs nothing else.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_FUZZ  ?= build-fuzz
BUILD_CLANG ?= build-release-clang
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX      ?= /usr/local

.PHONY: all deps build test test-asan build-release-clang install demo bench bench-sync bench-pipeline bench-reconcile bench-dag bench-engine bench-engine-diff bench-mirror bench-changes fuzz format format-check clean

all: build

deps:
	@scripts/deps.sh

# `make test` and `make test-asan` build with SLUICE_WERROR=ON, so a warning
# fails the tests and CI. `make` leaves the option as the build dir has it
# (off in a new one: a compiler newer than ours must not stop a build), so
# that going between `make` and `make test` does not rebuild everything.
build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON \
		-DSLUICE_WERROR=ON >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS)

# Everything built by clang at -O3, warnings as errors: clang warns where
# gcc does not, and what -O3 inlines gives the compiler more to see than the
# RelWithDebInfo build of `make test`. Built, not tested; CI runs it.
build-release-clang: deps
	@cmake -S . -B $(BUILD_CLANG) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Release \
		-DSLUICE_WERROR=ON >/dev/null
	@cmake --build $(BUILD_CLANG) -j $(JOBS)

# make install [PREFIX=/usr/local] [DESTDIR=/staging]: what `make` built,
# under $(DESTDIR)$(PREFIX); sluice.pc and the example units name $(PREFIX).
install: build
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

demo: build
	@scripts/demo.sh $(BUILD)/sluice

bench: build
	@scripts/bench.sh $(BUILD)

bench-sync: build
	@bench/sync_bench.sh $(BUILD) $(BENCH_OPS)

bench-pipeline: build
	@bench/pipeline_bench.sh $(BUILD) $(BENCH_SMALL) $(BENCH_LARGE)

bench-reconcile: build
	@bench/reconcile_bench.sh $(BUILD) $(BENCH_ITEMS)

bench-dag: build
	@bench/dag_bench.sh $(BUILD) $(BENCH_ENTRIES)

bench-engine: build
	@bench/engine_bench.sh $(BUILD)
	@bench/engine_diff_bench.sh $(BUILD)

bench-engine-diff: build
	@bench/engine_diff_bench.sh $(BUILD)

bench-mirror: build
	@bench/mirror_bench.sh $(BUILD) $(BENCH_EVENTS)
	@bench/mirror_reconcile_bench.sh $(BUILD)
	@bench/mirror_backfill_bench.sh $(BUILD) $(BENCH_EVENTS)

bench-changes: build
	@bench/changes_bench.sh $(BUILD) $(BENCH_ROWS)

# Real fuzzing with libFuzzer: make fuzz TARGET=op SECONDS=60
fuzz: deps
	@CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=Debug -DSLUICE_LIBFUZZER=ON \
		-DSLUICE_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_$(TARGET)
	@mkdir -p $(BUILD_FUZZ)/corpus-$(TARGET)
	@$(BUILD_FUZZ)/fuzz_$(TARGET) -max_total_time=$(or $(SECONDS),60) \
		$(BUILD_FUZZ)/corpus-$(TARGET) tests/fuzz/corpus/$(TARGET)

FORMAT_FILES = $(shell git ls-files '*.c' '*.h')

format:
	@clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_FUZZ) $(BUILD_CLANG)
