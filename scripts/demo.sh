#!/usr/bin/env bash
# scripts/demo.sh (make demo, after make images): a narrated first look at the
# machinery ebb's end-to-end tests stand on.  This machine has no /dev/kvm, so
# the demo boots the host-box — Debian's kernel under QEMU TCG with emulated
# AMD SVM — and shows KVM working inside it: the smoke test, then a Linux guest
# booted under KVM.  The in-box part is scripts/demo-box.sh.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}

cat <<TXT
ebb demo — KVM in the host-box
==============================
ebb is a guest-memory balloon and reclaim engine for KVM.  Its end-to-end tests
need /dev/kvm, which this machine $( [ -c /dev/kvm ] && echo "has" || echo "does not have").  So we boot a Linux
"host-box" under QEMU's TCG emulator with AMD SVM and nested paging emulated;
kvm_amd loads inside it and the box gets a real /dev/kvm.

  host kernel:  $(uname -r)
  box kernel:   $(cat "$BUILD/images/kernel-version" 2>/dev/null || echo "? (run make images)")
  box command:  qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 1 -m 4G ...
  box logs:     $BUILD/box-logs/

Booting the box (about 10 s), then running the demo inside it; what it prints
streams below.
TXT
echo
t0=$(date +%s)
# The ebb VMM part (scripts/demo-ebb.sh) runs in the same boot when present.
parts=(scripts/demo-box.sh)
[ -f scripts/demo-ebb.sh ] && parts+=(scripts/demo-ebb.sh)
[ -f scripts/demo-memory.sh ] && parts+=(scripts/demo-memory.sh)
BUILD=$BUILD tests/box/run --live -t 1800 "${parts[@]}" >"$BUILD/demo.tap"
rc=$?
echo
echo "Results (TAP, as the e2e suite reports them):"
grep -E '^(not )?ok ' "$BUILD/demo.tap" | sed 's/^/  /'
pass=$(grep -cE '^ok ' "$BUILD/demo.tap")
fail=$(grep -cE '^not ok ' "$BUILD/demo.tap")
echo
echo "demo: $pass passed, $fail failed in $(($(date +%s) - t0))s (box console: $BUILD/box-logs/latest.console.log)"
if [ "$rc" -eq 0 ]; then
	echo "Next: the same box runs the e2e suite — make check-e2e."
fi
exit "$rc"
