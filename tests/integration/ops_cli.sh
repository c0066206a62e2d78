#!/usr/bin/env bash
# ops_cli.sh — feedback on long operations, against a stub VM (the real
# control protocol and reclaim engine, no KVM): `ebb stat NAME --watch`
# repeats its report; `ebb set NAME high=... --wait` shows progress until
# the VM's resident RAM is under the new limit and exits 0, which the VM's
# own stats confirm; the stub's pages are intact afterwards.  `ebb balloon
# NAME SIZE --wait` against a second stub serving `balloon` with a model of
# a guest's driver (tests/integration/stub_vm.c --balloon: 64 MiB/s, never
# the hot set + 4 MiB): reached (exit 0, the VM's balloon at its target),
# stalled (exit 1 after 10 s without progress, saying the guest has too
# little available), gave up (exit 1 at --wait=SECS), and back to 100%.  TAP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
t=$(mktemp -d /tmp/ebb-ops-cli-XXXXXX)
stub= bstub=
cleanup() {
	[ -n "$stub" ] && kill "$stub" 2>/dev/null
	[ -n "$bstub" ] && kill "$bstub" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
if [ ! -x "$build/tests/integration/stub_vm" ] || [ ! -x "$build/bin/ebb" ]; then
	echo "1..0 # SKIP stub_vm or ebb not built"
	exit 77
fi
. "$top/tests/integration/lib/tap.sh"
echo "1..9"
mkdir -m 0700 "$t/run"
export EBB_RUNTIME_DIR=$t/run
"$build/tests/integration/stub_vm" --rundir "$t/run" --name w --mem 48 --hot 32 \
	--swap-dir "$t/run" > "$t/stub.out" 2>&1 &
stub=$!
for _ in $(seq 50); do [ -S "$t/run/w.sock" ] && break; sleep 0.1; done
sleep 1

"$build/bin/ebb" stat w --watch=0.3 --count=3 > "$t/watch.out" 2>&1
rc=$?
frames=$(grep -c '^--- [0-9:]* ---$' "$t/watch.out")
names=$(grep -c '^name: *w$' "$t/watch.out")
ok $((rc != 0 || frames != 3 || names != 3)) "ebb stat w --watch=0.3 --count=3: three reports (status $rc, $frames frames, $names names)"

"$build/bin/ebb" set w high=12M --wait=60 > "$t/wait.out" 2>&1
rc=$?
pages=$("$build/bin/ebb" stat w --json | awk -F'[:,]' '/"resident_pages"/ { gsub(/ /, "", $2); print $2; exit }')
res=$((${pages:-999999} * 4096))
grep -q '^w: reached: resident [0-9]* MiB, limit 12 MiB' "$t/wait.out"
reached=$?
ok $((rc != 0 || reached != 0)) "ebb set w high=12M --wait: exit $rc, $(grep -c 'to go' "$t/wait.out") progress lines, then '$(grep reached "$t/wait.out")'"
ok $((res > 13 * 1048576)) "the VM's own report agrees: resident $((res >> 20)) MiB (limit 12 MiB + 1 MiB slack)"

kill -TERM "$stub"
wait "$stub"
rc=$?
stub=
ok "$rc" "the stub's pages are intact (status $rc: $(tail -1 "$t/stub.out"))"

# ebb balloon --wait: 64 MiB guest, 16 MiB hot: the balloon can take 44 MiB
"$build/tests/integration/stub_vm" --rundir "$t/run" --name b --mem 64 --hot 16 --balloon \
	--swap-dir "$t/run" > "$t/bstub.out" 2>&1 &
bstub=$!
for _ in $(seq 50); do [ -S "$t/run/b.sock" ] && break; sleep 0.1; done
bal() { "$build/bin/ebb" balloon b --json | awk -F'[:,]' -v k="\"$1\"" '$1 ~ k { gsub(/ /, "", $2); print $2; exit }'; }
"$build/bin/ebb" balloon b 24M --wait=60 > "$t/b1.out" 2>&1
rc=$?
tgt=$(bal target_pages) act=$(bal actual_pages)
grep -q '^b: reached: balloon 40 MiB, the guest has 24 MiB' "$t/b1.out"
ok $((rc != 0 || $? != 0 || tgt != 10240 || act != 10240)) "ebb balloon b 24M --wait: exit $rc, '$(grep reached "$t/b1.out")'; the VM says target $tgt, actual $act pages"

t0=$(date +%s)
"$build/bin/ebb" balloon b 8M --wait=60 > "$t/b2.out" 2>&1
rc=$? el=$(( $(date +%s) - t0 ))
grep -q '^b: stalled: balloon 44 MiB, target 56 MiB, no progress for 10 s: the guest has only 4 MiB available' "$t/b2.out"
ok $((rc != 1 || $? != 0 || el < 10 || el > 30)) "ebb balloon b 8M --wait past what the guest can give: exit $rc after ${el} s, '$(grep stalled "$t/b2.out")'"

"$build/bin/ebb" balloon b 4M --wait=2 > "$t/b3.out" 2>&1
rc=$?
grep -q '^b: gave up after 2 s: balloon 44 MiB, target 60 MiB' "$t/b3.out"
ok $((rc != 1 || $? != 0)) "ebb balloon b 4M --wait=2: exit $rc, '$(grep 'gave up' "$t/b3.out")'"

"$build/bin/ebb" balloon b 100% --wait=60 > "$t/b4.out" 2>&1
rc=$?
act=$(bal actual_pages)
grep -q '^b: reached: balloon 0 bytes, the guest has 64 MiB' "$t/b4.out"
ok $((rc != 0 || $? != 0 || act != 0)) "ebb balloon b 100% --wait: exit $rc, progress lines $(grep -c 'to go' "$t/b4.out"), '$(grep reached "$t/b4.out")'"

"$build/bin/ebb" balloon b --wait > "$t/b5.out" 2>&1
rc=$?
ok $((rc == 0)) "ebb balloon b --wait without a size is refused: exit $rc, '$(cat "$t/b5.out")'"
kill -TERM "$bstub"
wait "$bstub"
bstub=
exit $failed
