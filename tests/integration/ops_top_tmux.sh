#!/usr/bin/env bash
# ops_top_tmux.sh — `ebb top` full screen in a real terminal: tmux runs it in
# a detached 160x32 pane, the test sends keys and reads the pane back.  Two
# stub VMs (tests/integration/stub_vm.c: the real control protocol and
# reclaim engine, no KVM) with different resident sizes, and ebbd in front
# of them (--vms-only); zeta is the bigger, alpha the smaller, so the two
# sort orders differ.  Checked on the screen: the header and the pool
# line; one row per VM whose RES agrees with the VM's own `ebb stat`
# (within 2 MiB: read a moment apart); `n` sorts by name, `r` by resident
# (the bigger VM first), `R` reverses it, space pauses (PAUSED in the
# header) and resumes, `q` quits (the pane's command ends within 2 s).  TAP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
t=$(mktemp -d /tmp/ebb-ops-top-XXXXXX)
sock=ebb-top-test-$$
pids=()
cleanup() {
	tmux -L "$sock" kill-server 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
if ! command -v tmux >/dev/null; then
	echo "1..0 # SKIP tmux not installed (make deps installs it)"
	exit 77
fi
for b in tests/integration/stub_vm bin/ebb bin/ebbd; do
	if [ ! -x "$build/$b" ]; then
		echo "1..0 # SKIP $build/$b not built"
		exit 77
	fi
done
. "$top/tests/integration/lib/tap.sh"
echo "1..8"
mkdir -m 0700 "$t/run"
export EBB_RUNTIME_DIR=$t/run
"$build/tests/integration/stub_vm" --rundir "$t/run" --name zeta --mem 48 --hot 24 \
	--swap-dir "$t/run" > "$t/zeta.out" 2>&1 &
pids+=($!)
"$build/tests/integration/stub_vm" --rundir "$t/run" --name alpha --mem 32 --hot 6 \
	--swap-dir "$t/run" > "$t/alpha.out" 2>&1 &
pids+=($!)
"$build/bin/ebbd" --rundir "$t/run" --budget 200M --vms-only --no-ksm --metrics off \
	--log "$t/ebbd.log" &
pids+=($!)
for _ in $(seq 50); do
	[ -S "$t/run/zeta.sock" ] && [ -S "$t/run/alpha.sock" ] && [ -S "$t/run/ebbd.sock" ] && break
	sleep 0.1
done
sleep 1.5   # the hot sets written, ebbd has seen both

pane() { tmux -L "$sock" capture-pane -p -t top; }
# wait until the pane shows $1 (a grep -E pattern), at most $2 tenths of a second
wait_pane() {
	local i
	for i in $(seq "$2"); do
		pane > "$t/pane.txt" 2>/dev/null && grep -qE "$1" "$t/pane.txt" && return 0
		sleep 0.1
	done
	return 1
}
# the order of the two VMs' rows on the screen: "zeta alpha" or "alpha zeta"
order() { awk '$1 == "zeta" || $1 == "alpha" { printf "%s ", $1 }' "$t/pane.txt" | sed 's/ $//'; }
res_of() { awk -v v="$1" '$1 == v { r = $2 } END { print r }' "$t/pane.txt" | tr -d M; }

tmux -L "$sock" -f /dev/null new-session -d -s top -x 160 -y 32 \
	"TERM=xterm EBB_RUNTIME_DIR=$t/run $build/bin/ebb top -d 0.5; echo top-exit=\$?; sleep 30"
wait_pane '^ *alpha ' 100
ok $? "ebb top draws in a tmux pane: header '$(grep -m1 'ebb top - ' "$t/pane.txt")'"
grep -q '^pool: budget 200M' "$t/pane.txt"
ok $? "the pool line from ebbd: '$(grep -m1 '^pool:' "$t/pane.txt")'"

res_big=$(res_of zeta)
pages=$("$build/bin/ebb" stat zeta --json | awk -F'[:,]' '/"resident_pages"/ { gsub(/ /, "", $2); print $2; exit }')
stat_big=$(( ${pages:-0} * 4096 >> 20 ))
d=$(( ${res_big:-0} - stat_big ))
[ -n "$res_big" ] && [ ${d#-} -le 2 ]
ok $? "zeta's RES on the screen ${res_big:-?} MiB, its own ebb stat $stat_big MiB"

tmux -L "$sock" send-keys -t top n
wait_pane 'sorted by name' 30 && [ "$(order)" = "alpha zeta" ]
ok $? "n sorts by name: rows '$(order)'"
tmux -L "$sock" send-keys -t top r
wait_pane 'sorted by resident' 30 && [ "$(order)" = "zeta alpha" ]
ok $? "r sorts by resident, the bigger first: rows '$(order)'"
tmux -L "$sock" send-keys -t top R
sleep 0.3
wait_pane 'sorted by resident' 30 && [ "$(order)" = "alpha zeta" ]
ok $? "R reverses: rows '$(order)'"

tmux -L "$sock" send-keys -t top ' '
wait_pane 'PAUSED' 30
r1=$?
tmux -L "$sock" send-keys -t top ' '
sleep 0.3
wait_pane 'ebb top - ' 30 && ! grep -q PAUSED "$t/pane.txt"
ok $((r1 || $?)) "space pauses (PAUSED in the header) and resumes"

tmux -L "$sock" send-keys -t top q
wait_pane '^top-exit=0' 20
ok $? "q quits: '$(grep -m1 'top-exit' "$t/pane.txt")'"
if [ $failed -ne 0 ]; then
	sed 's/^/# pane| /' "$t/pane.txt"
fi
exit $failed
