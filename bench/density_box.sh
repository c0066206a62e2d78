#!/usr/bin/env bash
# bench/density_box.sh (make bench): boots the host-box once and runs
# bench/box/density.sh in it: `ebb bench density` on the idle-heavy mix
# (idle=80,web=20) and the web mix, each under static, mom and ebb, VMs of
# 192 MiB on a 384 MiB budget (docs/density.md).  Prints the VMs each policy
# held and the ratios the project holds itself to: ebb >= 2x static on the
# idle-heavy mix, ebb >= 1.3x mom on both, with no OOM kill.  The ratios are
# reported whatever they are; the script fails only when a run did not
# complete (figures missing), not on a ratio below the goal.
set -u
BUILD=${BUILD:-build}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
BUILD=$BUILD tests/box/run -t 5400 --total 5700 bench/box/density.sh >"$out" 2>&1
status=$?
grep -E '^(not )?ok|^# box|\| (policy|static|mom|ebb) ' "$out" | sed 's/^/  /'
fig() { sed -n "s/.*bench-figure: $1 \([0-9?]*\).*/\1/p" "$out" | head -n 1; }
missing=0
for m in idle web; do
	for p in static mom ebb; do
		v=$(fig "${m}_${p}_held")
		case $v in '' | *[!0-9]*) missing=1 ;; esac
	done
done
if [ "$missing" = 1 ]; then
	echo "density_box: figures missing (box output above; logs in $BUILD/box-logs)"
	grep 'bench-figure\|not ok' "$out" | sed 's/^/  /'
	exit 1
fi
awk -v is="$(fig idle_static_held)" -v im="$(fig idle_mom_held)" -v ie="$(fig idle_ebb_held)" \
    -v ws="$(fig web_static_held)" -v wm="$(fig web_mom_held)" -v we="$(fig web_ebb_held)" \
    -v io="$(fig idle_oom_verdicts)" -v wo="$(fig web_oom_verdicts)" '
function r(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "-" }
BEGIN {
	printf "VMs of 192 MiB held at the SLO (p99 <= 4.0x, throughput >= 0.9x) on a 384 MiB budget, in the host-box under KVM:\n"
	printf "  %-24s %6s %6s %6s   %-10s %-10s\n", "mix", "static", "mom", "ebb", "ebb/static", "ebb/mom"
	printf "  %-24s %6d %6d %6d   %-10s %-10s\n", "idle-heavy (idle=80,web=20)", is, im, ie, r(ie, is), r(ie, im)
	printf "  %-24s %6d %6d %6d   %-10s %-10s\n", "web", ws, wm, we, r(we, ws), r(we, wm)
	printf "  goal: ebb >= 2x static on idle-heavy (%s), >= 1.3x mom on both (%s, %s), no OOM kill (%d, %d)\n",
		(is > 0 && ie >= 2 * is) ? "met" : "not met",
		(im > 0 && ie >= 1.3 * im) ? "met" : "not met", (wm > 0 && we >= 1.3 * wm) ? "met" : "not met", io, wo
}'
# The runs' CSVs, plot data and gnuplot scripts, back from the console, and
# the plots drawn here (gnuplot is not in the box).
dir=$BUILD/density
rm -rf "$dir" && mkdir -p "$dir/idle" "$dir/web"
sed -n 's/.*bench-file: \(idle\|web\)\/\([A-Za-z0-9._-]*\)|\(.*\)$/\1\/\2|\3/p' "$out" |
	awk -v d="$dir" '{ i = index($0, "|"); print substr($0, i + 1) > (d "/" substr($0, 1, i - 1)) }'
for m in idle web; do
	if [ ! -f "$dir/$m/density.gp" ]; then
		echo "  $m mix: no plot data came back"
	elif ! command -v gnuplot >/dev/null; then
		echo "  $m mix: CSVs and plot data in $dir/$m; gnuplot is not installed (make deps installs it): no PNG"
	elif (cd "$dir/$m" && gnuplot density.gp) 2>"$dir/$m/gnuplot.log"; then
		echo "  $m mix: CSVs in $dir/$m, plots $dir/$m/density-slo.png and $dir/$m/density-memory.png"
	else
		echo "  $m mix: gnuplot failed, see $dir/$m/gnuplot.log"
	fi
done
exit $status
