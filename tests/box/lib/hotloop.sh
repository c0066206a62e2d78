# tests/box/lib/hotloop.sh — what the scenarios that run tests/progs/pattern's
# hot loops under ebb share (squeeze_hot.sh, squeeze_read.sh; sourced as
# /ebb/lib/hotloop.sh after scenario.sh): watching the loop for a stall,
# ending the run, and its figures.  Contract: docs/box.md.

# stacks NAME: where each thread of the VM's ebb process is (a stalled guest).
stacks() {
	pid=$("$EBB" stat "$1" --json 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
	[ -n "$pid" ] || { echo "# $1: no answer from ebb stat"; return; }
	for t in /proc/"$pid"/task/*; do
		echo "# $1 thread $(basename "$t") $(cat "$t/comm") state $(cut -d' ' -f3 "$t/stat") wchan $(cat "$t/wchan" 2>/dev/null)"
		sed 's/^/#     /' "$t/stack" 2>/dev/null | head -n 12
	done
}

# hot_watch NAME SWAPINS: samples "uptime nr_swapped_in resident_pages" into
# NAME.samples every 5 s until the guest's hot loop is done.  120 s without
# a console line is a stall (with SWAPINS=1: without a console line and
# without a swap-in, for a guest whose first pass prints nothing): reported
# as a failing TAP line with the VM's stacks, and 1 returned.
hot_watch() {
	name=$1
	: >"$name.samples"
	lines=0 quiet=0 swin=
	while ! grep -q 'pattern: hot loop done' "$name.log"; do
		sw=
		"$EBB" stat "$name" --json >"$name.json" 2>/dev/null &&
			sw=$(field "$name.json" nr_swapped_in) &&
			echo "$(now) $sw $(field "$name.json" resident_pages)" >>"$name.samples"
		grep -q 'ebb-exit' "$name.log" && break
		[ "$2" = 1 ] || sw=
		n=$(wc -l <"$name.log")
		if [ "$n" = "$lines" ] && [ "$sw" = "$swin" ]; then
			quiet=$((quiet + 5))
		else
			quiet=0 lines=$n swin=$sw
		fi
		if [ $quiet -ge 120 ]; then
			if [ "$2" = 1 ]; then
				echo "not ok - $name: the guest stalled (no console output and no swap-in for 120 s)"
			else
				echo "not ok - $name: the guest stalled (no console output for 120 s)"
			fi
			fail=1
			stacks "$name"
			dump "$name.log"
			tail -n 3 "$name.samples" | sed 's/^/# samples| /'
			timeout 30 "$EBB" stop "$name" >/dev/null 2>&1 || kill -KILL "$pid" 2>/dev/null
			return 1
		fi
		sleep 5
	done
}

# hot_finish NAME: once the hot loop is done, waits for the guest's check of
# its data, stops the VM (its last ebb stat in NAME.json) and prints the
# loop's reports, the samples and the engine's counters as '#' lines.
hot_finish() {
	name=$1
	pid=$("$EBB" stat "$name" --json 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
	echo "# $name: VMM AnonHugePages at the end of the loop: $(awk '/^AnonHugePages:/ { print $2, $3 }' /proc/"$pid"/smaps_rollup 2>/dev/null) (host THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled))"
	wait_for "$name.log" 'pattern: hot done' 600
	"$EBB" stat "$name" --json >"$name.json" 2>/dev/null
	"$EBB" stop "$name" >/dev/null 2>&1
	wait_for "$name.log" 'ebb-exit' 60
	grep 'pattern: hot' "$name.log" | tail -n 40 | sed "s/^/# $name| /"
	sed "s/^/# $name samples (uptime swapped_in resident)| /" "$name.samples" | tail -n 40
	echo "# $name: swapped out $(field "$name.json" nr_swapped_out), in $(field "$name.json" nr_swapped_in), refaults $(field "$name.json" nr_refaults) (activated $(field "$name.json" nr_refault_activate)), aging passes $(field "$name.json" nr_aging_passes), oom $(field "$name.json" nr_oom), errors $(field "$name.json" nr_errors)"
}

# hot_figures NAME FROM: sets tp_NAME (the mean MiB/s of the loop's reports
# whose interval lies after t=FROM s: each report covers the time since the
# one before it, and one over a longer, slower stretch is left out whole),
# rate_NAME (swap-ins/s over the last 30 s of the samples) and ok_NAME (0 if
# the guest found its data intact).
hot_figures() {
	name=$1
	eval "tp_$name=\$(grep 'pattern: hot t=' \"$name.log\" | sed 's/.*hot t=\([0-9]*\) mib_per_s=/\1 /' |
		awk -v from=$2 '{ if (prev >= from) { s += \$2; n++ } prev = \$1 }
			END { if (n) printf \"%.1f\", s / n; else print 0 }')"
	eval "rate_$name=\$(awk 'NR == FNR { t[NR] = \$1; v[NR] = \$2; n = NR; next } END {
		if (n < 2) { print -1; exit } i = n; while (i > 1 && t[n] - t[i - 1] <= 30) i--;
		if (t[n] > t[i]) printf \"%.1f\", (v[n] - v[i]) / (t[n] - t[i]); else print -1 }' \"$name.samples\")"
	grep -q 'pattern: hot done .*bad_pages=0 ' "$name.log"
	eval "ok_$name=$?"
}
