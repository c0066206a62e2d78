# squeeze_read: aging from accessed bits (docs/reclaim.md, "Signals").  A
# 1 GiB, 1 vCPU guest fills 400 MiB (tests/progs/pattern hotread: a 150 MiB
# hot set first, then 250 MiB it never touches again), then only READS the
# hot set for $HOT_S s, then verifies all 400 MiB.  Three runs, one after
# the other in the same box:
#   free   the engine with no limit (the throughput reference; only in
#          the benchmark, squeeze_read_full.sh);
#   dirty  --mem-max 300M, aging from the KVM dirty log and refaults only
#          (/sys/kernel/mm/page_idle is hidden under an empty tmpfs, so ebb
#          finds no idle page tracking): the dirty log never sees a page the
#          guest only reads (also only in the benchmark);
#   idle   --mem-max 300M with idle page tracking: the NPT accessed bits
#          reach the LRU (host-reclaim/refsrc.c).
# Checks: the data is bit-identical at the end of every run; with accessed
# bits the swap-in rate over the last 30 s of the hot loop is below 1% of the
# hot set per second.  Reports (bench-figure lines; bench/squeeze_read_box.sh
# holds them to bounds): swap-ins/s of both limited runs, throughput over the
# last 60 s of the loop of all three, the page_idle harvest's CPU per GiB per
# pass.  Needs the ebb box kernel (idle page tracking): skips on Debian's.
# The accessed-bit run alone took 180 s of box time (2026-12-07, beside a
# second box); the benchmark ~15 min.  Scenario contract: docs/box.md.
# box-timeout: 2400
# box-cost: 200 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

if [ ! -e /sys/kernel/mm/page_idle/bitmap ]; then
	echo "no /sys/kernel/mm/page_idle/bitmap on box kernel $(uname -r) (BOX_KERNEL=debian?)"
	exit 77
fi

. /ebb/lib/scenario.sh   # start, wait_for, check, dump, field, now (docs/box.md)
. /ebb/lib/hotloop.sh    # stacks, hot_watch, hot_finish, hot_figures

# As squeeze_read.sh (make check-e2e) the accessed-bit run alone, and its
# swap-in rate is checked; bench/squeeze_read_box.sh runs this file as
# bench/box/squeeze_read_full.sh (a link), which adds the unconstrained and
# the dirty-log-only runs and a longer loop for the throughput figures.
case $0 in
*_full.sh) full=1 HOT_S=120 ;;
*) full=0 HOT_S=90 ;;
esac
TP_WINDOW_S=60
script="pattern hotread 400 150 $HOT_S 5; sleep 900"  # the VM stays up until ebb stop
hot_pages=38400

# run NAME OPTS...: boots, waits for the hot loop, samples nr_swapped_in
# every 5 s until the loop ends; sets tp_NAME (MiB/s over the reports of the
# last TP_WINDOW_S s of the loop), rate_NAME (swap-ins/s over the last 30 s
# of the loop), ok_NAME (bad_pages=0 at the end).
run() {
	name=$1
	shift
	start "$name" "$name.log" "$script" --mem 1G "$@"
	if ! wait_for "$name.log" 'pattern: hot filled' 600; then
		echo "not ok - $name: guest filled its memory"
		fail=1
		dump "$name.log"
		return 1
	fi
	echo "# $name: filled at $(now) s ($(grep -m1 'hot filled' "$name.log" | cut -d' ' -f1) on the console clock)"
	hot_watch "$name" 0 || return 1
	hot_finish "$name"
	echo "# $name: page_idle $(sed -n 's/.*"page_idle": *\([a-z]*\).*/\1/p' "$name.json" | head -n 1), passes $(field "$name.json" page_idle_passes), pages scanned $(field "$name.json" page_idle_pages_scanned), accessed $(field "$name.json" page_idle_accessed), syscalls $(field "$name.json" page_idle_syscalls), CPU $(field "$name.json" page_idle_cpu_us) us"
	hot_figures "$name" $((HOT_S - TP_WINDOW_S))
}

tp_free=0
if [ "$full" = 1 ]; then
	run free --reclaim on
	mount -t tmpfs -o ro,size=4k none /sys/kernel/mm/page_idle ||
		{ echo "not ok - could not hide /sys/kernel/mm/page_idle for the dirty-log-only run"; exit 1; }
	run dirty --mem-max 300M
	umount /sys/kernel/mm/page_idle
fi
run idle --mem-max 300M
# A run that failed early (or was not made) leaves its figures unset.
: "${rate_dirty:=-1}" "${rate_idle:=-1}" "${tp_dirty:=0}" "${tp_idle:=0}"
for n in $([ "$full" = 1 ] && echo free dirty) idle; do
	eval "ok=\$ok_$n"
	[ "${ok:-1}" -eq 0 ]
	check $? "$n: hot and cold data bit-identical at the end of the run"
done
if [ "$full" = 1 ]; then
	grep -q '"page_idle": *false' dirty.json
	check $? "dirty: ran without idle page tracking (dirty log + refaults only)"
fi
grep -q '"page_idle": *true' idle.json
check $? "idle: ran with idle page tracking"
echo "# swap-ins/s over the last 30 s of the hot loop: dirty log + refaults $rate_dirty, with accessed bits $rate_idle (hot set $hot_pages pages)"
awk "BEGIN { exit !($rate_idle >= 0 && $rate_idle < $hot_pages / 100) }"
check $? "with accessed bits, --mem-max 300M: swap-in rate after warm-up close to zero ($rate_idle/s < 1% of the hot set per second; dirty log + refaults only: $rate_dirty/s)"
# The harvest's cost: CPU per GiB of guest RAM scanned per pass.
cost=$(awk -v us="$(field idle.json page_idle_cpu_us)" -v pg="$(field idle.json page_idle_pages_scanned)" \
	'BEGIN { if (pg > 0) printf "%.2f", us / 1000 / (pg * 4096 / 1073741824); else print -1 }')
echo "# page_idle harvest: $(field idle.json page_idle_passes) passes, $(field idle.json page_idle_pages_scanned) pages scanned, $(field idle.json page_idle_syscalls) syscalls, $cost ms CPU per GiB per pass"
echo "bench-figure: read_free_mib_s $tp_free"
echo "bench-figure: read_dirty_mib_s $tp_dirty"
echo "bench-figure: read_idle_mib_s $tp_idle"
echo "bench-figure: read_dirty_swapin_s $rate_dirty"
echo "bench-figure: read_idle_swapin_s $rate_idle"
echo "bench-figure: read_idle_ms_per_gib_pass $cost"
echo "# throughput ratio to unconstrained: dirty log + refaults $(awk "BEGIN { if ($tp_free > 0) printf \"%.2f\", $tp_dirty / $tp_free }"), with accessed bits $(awk "BEGIN { if ($tp_free > 0) printf \"%.2f\", $tp_idle / $tp_free }")"
exit 0
