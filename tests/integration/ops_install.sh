#!/usr/bin/env bash
# ops_install.sh — what `make install` puts in place for operating a host,
# checked on this machine: the layout under PREFIX (binaries, systemd
# units with their paths filled in, man pages, bash completion, the example
# configuration, which becomes /etc/ebb/ebbd.conf only when there is none);
# `systemd-analyze verify` on ebbd.service and an ebb@NAME.service instance;
# the man pages through groff's warnings; and the hardening's claim that
# ebbd needs no capability: ebbd started with an empty bounding set (as
# ebbd.service's CapabilityBoundingSet=) joins a stub VM, writes the KSM
# settings back at exit, and exits 0.  TAP.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-build}
case $build in /*) ;; *) build=$top/$build ;; esac
t=$(mktemp -d /tmp/ebb-ops-install-XXXXXX)
. "$top/tests/integration/lib/tap.sh"
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
cleanup() {
	[ -n "${stub:-}" ] && kill "$stub" 2>/dev/null && wait "$stub" 2>/dev/null
	rm -rf "$t"
}
trap cleanup EXIT
echo "1..10"

p=$t/usr
make -s -C "$top" BUILD="$build" install PREFIX="$p" SYSCONFDIR="$t/etc" > "$t/make.log" 2>&1
rc=$?
missing=
for f in bin/ebb bin/ebbd bin/ebb-agent lib/systemd/system/ebbd.service \
	lib/systemd/system/ebb@.service share/man/man1/ebb.1 share/man/man5/ebbd.conf.5 \
	share/man/man8/ebbd.8 share/man/man8/ebb-agent.8 share/bash-completion/completions/ebb \
	share/bash-completion/completions/ebbd share/doc/ebb/ebbd.conf.example; do
	[ -e "$p/$f" ] || missing="$missing $f"
done
[ -f "$t/etc/ebb/ebbd.conf" ] && [ -d "$t/etc/ebb/vms" ] || missing="$missing etc/ebb/ebbd.conf,vms/"
ok $((rc != 0 || ${#missing} != 0)) "make install PREFIX=... puts every file in place (status $rc;${missing:- nothing missing})"

grep -q '@BINDIR@' "$p"/lib/systemd/system/*.service
left=$?
grep -q "ExecStart=$p/bin/ebbd\$" "$p/lib/systemd/system/ebbd.service"
ok $((left == 0 || $? != 0)) "the units name the installed binaries ($p/bin)"

echo '[pool]' > "$t/etc/ebb/ebbd.conf"
echo 'policy = static' >> "$t/etc/ebb/ebbd.conf"
make -s -C "$top" BUILD="$build" install PREFIX="$p" SYSCONFDIR="$t/etc" > "$t/make2.log" 2>&1
grep -q 'policy = static' "$t/etc/ebb/ebbd.conf"
ok $? "a second make install keeps the operator's /etc/ebb/ebbd.conf"

"$p/bin/ebbd" --config "$p/share/doc/ebb/ebbd.conf.example" --check-config > "$t/check.out" 2>&1
ok $? "the example configuration passes ebbd --check-config ($(cut -c1-60 < "$t/check.out")...)"

# a bad value, an unknown key, a line that is not INI: exit 2, one line naming file:line
bad=0 msgs=
for c in "bad value|[pool]\ntick_ms = 5\n|:2: tick_ms: expected a whole number from 10 to 20000" \
	"unknown key|[pool]\n\nbudgit = 1G\n|:3: unknown key \"budgit\" in [pool]" \
	"bad line|; ebbd\n[pool]\nbudget 1G\n|:3: not INI"; do
	printf "${c#*|}" | sed 's/|.*//' > "$t/bad.conf"
	want=${c##*|}
	"$p/bin/ebbd" --config "$t/bad.conf" --check-config > "$t/bad.out" 2> "$t/bad.err"
	rc=$?
	lines=$(wc -l < "$t/bad.err")
	if [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || ! grep -qF "$t/bad.conf$want" "$t/bad.err"; then
		bad=1
		msgs="$msgs [${c%%|*}: status $rc, $lines lines: $(cat "$t/bad.err")]"
	fi
	# ebbd itself (not only --check-config) refuses to start the same way
	"$p/bin/ebbd" --config "$t/bad.conf" --metrics off --rundir "$t" > /dev/null 2>&1
	[ $? -eq 2 ] || { bad=1; msgs="$msgs [${c%%|*}: ebbd started]"; }
done
ok $bad "a bad value, an unknown key and a line that is not INI: exit 2 with one message naming file:line${msgs}"

if command -v systemd-analyze > /dev/null; then
	# it must be able to complain: a copy with a misspelt key and a relative path
	mkdir -p "$t/probe"
	sed -e 's/^ProtectHome=/ProtectHomme=/' -e "s|^ExecStart=.*|ExecStart=bin/ebbd|" \
		"$p/lib/systemd/system/ebbd.service" > "$t/probe/ebbd.service"
	probe=$(systemd-analyze verify --man=no "$t/probe/ebbd.service" 2>&1)
	out=$(systemd-analyze verify --man=no "$p/lib/systemd/system/ebbd.service" 2>&1)
	rc=$?
	ok $((rc != 0 || ${#out} != 0 || ${#probe} == 0)) "systemd-analyze verify ebbd.service: status $rc, ${#out} bytes of complaints${out:+: $out} (a broken copy: ${#probe} bytes)"
	mkdir -p "$t/units"
	cp "$p/lib/systemd/system/ebb@.service" "$t/units/"
	ln -s ebb@.service "$t/units/ebb@web1.service"
	out=$(systemd-analyze verify --man=no "$t/units/ebb@web1.service" 2>&1)
	rc=$?
	ok $((rc != 0 || ${#out} != 0)) "systemd-analyze verify ebb@web1.service: status $rc, ${#out} bytes of complaints${out:+: $out}"
else
	skip "systemd-analyze not installed (Debian package systemd)"
	skip "systemd-analyze not installed (Debian package systemd)"
fi

if command -v groff > /dev/null; then
	out=$(for m in "$p"/share/man/man*/*; do groff -man -ww -z "$m" 2>&1; done)
	ok ${#out} "groff -man -ww finds nothing to say about the four man pages${out:+: $out}"
else
	skip "groff not installed"
fi
bash -n "$p/share/bash-completion/completions/ebb"
ok $? "the bash completion parses"

# ebbd with no capability at all, against a stub VM
if ! command -v setpriv > /dev/null; then
	skip "setpriv (util-linux) not installed"
elif [ ! -x "$build/tests/integration/stub_vm" ]; then
	skip "stub_vm not built"
else
	run=$t/run
	mkdir -m 0700 "$run"
	"$build/tests/integration/stub_vm" --rundir "$run" --name s1 --mem 32 --hot 4 \
		--swap-dir "$run" > "$t/stub.out" 2>&1 &
	stub=$!
	sleep 1
	ksm_before=$(cat /sys/kernel/mm/ksm/sleep_millisecs 2>/dev/null)
	setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- \
		"$build/bin/ebbd" --rundir "$run" --budget 48M --vms-only --tick-ms 200 \
		--metrics off --log "$t/ebbd.log" &
	d=$!
	joined=1
	for _ in $(seq 50); do
		if grep -q 's1 joins the pool' "$t/ebbd.log" 2>/dev/null &&
			EBB_RUNTIME_DIR=$run "$build/bin/ebb" top -b -n 1 2>/dev/null | grep -q 'pool: budget 48M'; then
			joined=0
			break
		fi
		sleep 0.2
	done
	caps=$(awk '/^CapEff/ { print $2 }' "/proc/$d/status" 2>/dev/null)
	kill -TERM "$d"
	wait "$d"
	rc=$?
	grep -q 'cannot restore the ksm' "$t/ebbd.log"
	restore_failed=$((1 - $?))
	ok $((joined != 0 || rc != 0 || restore_failed != 0 || caps != 0000000000000000)) \
		"ebbd with an empty bounding set (CapEff $caps) joins the stub, serves ebb top, writes KSM back and exits $rc (KSM sleep_millisecs $ksm_before -> $(cat /sys/kernel/mm/ksm/sleep_millisecs 2>/dev/null))"
	[ "$failed" -ne 0 ] && sed 's/^/# /' "$t/ebbd.log"
fi
exit $failed
