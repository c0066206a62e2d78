#!/usr/bin/env bash
# ops_cli.sh — feedback on long operations, against a stub VM (the real
# control protocol and reclaim engine, no KVM): `ebb stat NAME --watch`
# repeats its report; `ebb set NAME high=... --wait` shows progress until
# the VM's resident RAM is under the new limit and exits 0, which the VM's
# own stats confirm; the stub's pages are intact afterwards.  TAP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
t=$(mktemp -d /tmp/ebb-ops-cli-XXXXXX)
stub=
cleanup() {
	[ -n "$stub" ] && kill "$stub" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
if [ ! -x "$build/tests/integration/stub_vm" ] || [ ! -x "$build/bin/ebb" ]; then
	echo "1..0 # SKIP stub_vm or ebb not built"
	exit 77
fi
n=0 failed=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
echo "1..4"
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
exit $failed
