#!/bin/sh
# Run the pickle decoder's libFuzzer target for SECONDS (default 60).
#
#   tests/run-fuzz.sh 600
#
# Configures a separate clang build (build-fuzz/, or $MPROC_FUZZ_BUILD) with
# -Dfuzz=enabled; the target adds -fsanitize=fuzzer,address,undefined
# itself. The seed corpus is copied to a scratch directory so that what the
# fuzzer learns never lands in tests/fuzz-corpus. Exits nonzero when the
# fuzzer finds a crash, leak, timeout or sanitizer report; the input that
# triggered it is left in the build directory (crash-*, leak-*, ...).
set -eu

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MPROC_FUZZ_BUILD:-$root/build-fuzz}

if ! command -v clang >/dev/null 2>&1; then
	echo "run-fuzz: clang not found; nothing to do" >&2
	exit 0
fi
if [ ! -d "$build" ]; then
	CC=clang meson setup "$build" "$root" -Dfuzz=enabled -Db_lto=false >/dev/null
fi
ninja -C "$build" tests/fuzz_pickle

work=$(mktemp -d "${TMPDIR:-/tmp}/mproc-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cp "$root"/tests/fuzz-corpus/* "$work"/

cd "$build"
# -timeout: a single input taking a second is a hang for a decoder.
# -rss_limit_mb: the decoder must not blow up on any input.
"$build"/tests/fuzz_pickle "$work" \
	-max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
	-max_len=65536 -print_final_stats=1
