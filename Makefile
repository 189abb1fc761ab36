# SPDX-License-Identifier: Apache-2.0
# Thin wrapper around CMake + CTest. Variables:
#   BUILD=dir          build directory (default: build)
#   CMAKE_ARGS=...     extra CMake arguments (e.g. -DPV_SANITIZE=ON -DPV_WERROR=ON)
#   FUZZ_SECONDS=N     how long `make fuzz` runs each harness (default: 60)
BUILD ?= build
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc)

.PHONY: all deps configure build run test bench fuzz format check-format clean

all: build

deps:
	scripts/install-deps

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

configure:
	cmake -S . -B $(BUILD) $(CMAKE_ARGS)

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	scripts/run-demo $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench:
	$(MAKE) build BUILD=build-bench CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release"
	bench/run build-bench

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DPV_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j $(JOBS) --target fuzzers
	scripts/run-fuzz build-fuzz $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

check-format:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-bench build-fuzz build-ci
