#!/usr/bin/env bash
# make bench: runs every benchmark. Each prints its own figures next to the
# peer's, measured in the same run on this machine, as ratios.
#   $BUILD/bench/bench_*   compiled benchmarks (bench/bench_*.c)
#   bench/*.sh             scripted benchmarks (e.g. ones that boot the host-box)
set -u
BUILD=${BUILD:-build}
status=0
for b in "$BUILD"/bench/bench_* bench/*.sh; do
	[ -x "$b" ] || continue
	echo "=== bench $(basename "$b")"
	t0=$SECONDS
	BUILD=$BUILD "$b" || { echo "=== bench $(basename "$b") FAILED"; status=1; }
	echo "=== bench $(basename "$b") took $((SECONDS - t0))s"
done
exit $status
