#!/usr/bin/env bash
# bench/squeeze_hot_box.sh (make bench): boots the host-box once and runs
# tests/box/scenarios/squeeze_hot.sh alone in it (as
# bench/box/squeeze_hot_full.sh, a link: the name adds the unconstrained
# run, which make check-e2e leaves out): a 1 GiB guest with a
# 200 MiB hot set under --mem-max 400M, against the same guest under the
# engine with no limit, one after the other.  Prints both throughputs over
# the last 60 s of the hot loop and their ratio; fails if the constrained
# run is more than 10% slower (the bound of docs/memory.md).  Run it on an
# otherwise idle machine: the box's speed follows the host's load.
set -u
BUILD=${BUILD:-build}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
BUILD=$BUILD tests/box/run bench/box/squeeze_hot_full.sh >"$out" 2>&1
status=$?
grep -E '^(not )?ok|^# box|AnonHugePages|swapped out' "$out" | sed 's/^/  /'
fig() { sed -n "s/.*bench-figure: $1 \([0-9.]*\).*/\1/p" "$out" | head -n 1; }
free=$(fig hot_free_mib_s) tight=$(fig hot_tight_mib_s)
if [ -z "$free" ] || [ -z "$tight" ]; then
	echo "squeeze_hot_box: figures missing (logs in $BUILD/box-logs)"
	exit 1
fi
awk -v f="$free" -v t="$tight" 'BEGIN {
	printf "hot set (200 MiB of a 1 GiB guest), last 60 s of the loop, in the host-box under KVM:\n"
	printf "  engine, no limit:      %.1f MiB/s\n", f
	printf "  engine, --mem-max 400M: %.1f MiB/s\n", t
	printf "  ratio constrained/unconstrained: %.2fx (bound: >= 0.90x)\n", (f > 0 ? t / f : 0)
	exit !(f > 0 && t >= 0.9 * f)
}' || status=1
exit $status
