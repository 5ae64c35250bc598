#!/usr/bin/env bash
# Runs the benchmarks (`make bench`): prints the machine, then the table from
# BUILD_DIR/store_bench. Arguments after BUILD_DIR go to store_bench;
# BENCH_OPS=N is short for --ops N (store_bench defaults to 1,000,000).
# The bench's data lives in a mktemp -d under ${TMPDIR:-/tmp}, removed at exit.
#
#   scripts/bench.sh build
#   BENCH_OPS=100000 scripts/bench.sh build
#   scripts/bench.sh build --ops 50000 --seed 7
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: scripts/bench.sh BUILD_DIR [store_bench arguments...]" >&2
  exit 2
fi
build=$1
shift
bench=$build/store_bench
if [ ! -x "$bench" ]; then
  echo "bench: $bench is not built (run make build)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

args=()
if [ -n "${BENCH_OPS:-}" ]; then
  args+=(--ops "$BENCH_OPS")
fi

# One "name: value" line per fact; a fact that cannot be found says so.
fact() {
  printf '%-10s %s\n' "$1:" "${2:-unknown}"
}

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1 || true)
cpu_mhz=$(sed -n 's/^cpu MHz[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n1 || true)
sha_ni=no
if grep -qw sha_ni /proc/cpuinfo 2>/dev/null; then
  sha_ni=yes
fi
hypervisor=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor:[[:space:]]*//p' || true)
mem_kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/meminfo 2>/dev/null || true)

# The file system and block device the temporary directory lives on.
disk=$(df -hT "$tmp" 2>/dev/null | awk 'NR == 2 { print $1 " (" $2 ", " $3 " total, " $5 " free)" }' || true)
source_dev=$(df --output=source "$tmp" 2>/dev/null | tail -n1 || true)
if [ -b "$source_dev" ]; then
  dev=$(lsblk -dno PKNAME "$source_dev" 2>/dev/null || true)
  dev=${dev:-$(basename "$source_dev")}
  sys=/sys/block/$dev
  driver=$(basename "$(readlink "$sys/device/driver" 2>/dev/null || echo unknown)")
  model=
  if [ -r "$sys/device/model" ]; then
    model=$(tr -s ' ' <"$sys/device/model")
  fi
  rotational=$(cat "$sys/queue/rotational" 2>/dev/null || echo "?")
  disk="$disk; $dev: ${model:+$model, }driver $driver, rotational=$rotational"
fi

sqlite_version=$(pkg-config --modversion sqlite3 2>/dev/null || sqlite3 --version 2>/dev/null | cut -d' ' -f1 || true)
openssl_version=$(openssl version 2>/dev/null || true)
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
compiler=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [ -n "$compiler" ]; then
  compiler="$("$compiler" --version 2>/dev/null | head -n1 || true), ${build_type:-no build type}"
fi
src=$(cd "$(dirname "$0")/.." && pwd)
revision=$(git -C "$src" describe --always --dirty 2>/dev/null || true)

echo "sluice benchmarks, $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
fact "cpu" "${cpu_model:-unknown}, $(nproc) cores${cpu_mhz:+ at ${cpu_mhz%.*} MHz}, sha_ni $sha_ni${hypervisor:+, $hypervisor guest}"
fact "memory" "${mem_kib:+$((mem_kib / 1024 / 1024)) GiB}"
fact "kernel" "$(uname -sr)"
fact "disk" "${disk:-} (temp dir $tmp)"
fact "sqlite" "$sqlite_version"
fact "openssl" "$openssl_version"
fact "compiler" "$compiler"
fact "revision" "$revision"
echo

"$bench" ${args[@]+"${args[@]}"} --dir "$tmp" "$@"
