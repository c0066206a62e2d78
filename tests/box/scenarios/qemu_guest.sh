# box-needs: qemu
# qemu_guest: ebb's guest image boots under QEMU with KVM inside the host-box
# (QEMU is the peer ebb's benchmarks compare against) and honours the guest
# contract of docs/box.md: the "ebb-guest: ready" line, an ebb.cmd= script
# from the kernel command line, an /ebb/run script added by appending a cpio
# to the initrd, and "ebb-guest: exit <status>" followed by power-off.
# box-cost: 105 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

GUEST_TIMEOUT_S=${GUEST_TIMEOUT_S:-240}

# boot_guest INITRD LOG APPEND... — sets secs and timed_out.
boot_guest() {
	initrd=$1 log=$2
	shift 2
	t0=$(cut -d' ' -f1 /proc/uptime)
	# busybox timeout returns the child's status, so timing tells a kill.
	timeout -s KILL "$GUEST_TIMEOUT_S" qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 \
		-nodefaults -display none -monitor none -serial stdio -no-reboot \
		-kernel "$GUEST_KERNEL" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 $*" </dev/null >"$log" 2>&1
	t1=$(cut -d' ' -f1 /proc/uptime)
	secs=$(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")
	timed_out=$(awk "BEGIN { print ($t1 - $t0 >= $GUEST_TIMEOUT_S) ? 1 : 0 }")
}
check() { # check DESCRIPTION COMMAND... — one TAP line; remembers failures
	d=$1
	shift
	if "$@"; then echo "ok - $d"; else echo "not ok - $d"; bad=1; fi
}
show_log() { sed 's/^/# guest| /' "$1" | tail -n 40; }

command -v qemu-system-x86_64 >/dev/null || { echo "no qemu-system-x86_64 in the box"; exit 77; }

# 1. ebb.cmd=<base64 script>, agent off.
bad=0
cmd=$(printf 'echo "guest-says: $(grep -c ^processor /proc/cpuinfo) cpu"\nexit 5\n' | base64 | tr -d '\n')
boot_guest "$GUEST_INITRD" cmd.log "ebb.agent=0 ebb.cmd=$cmd"
check "guest booted under qemu -accel kvm and printed the ready line (${secs}s)" \
	grep -q '^ebb-guest: ready uptime=' cmd.log
check "the ebb.cmd script ran in the guest" grep -q '^guest-says: 1 cpu' cmd.log
check "init reported the script's exit status 5" grep -q '^ebb-guest: exit 5' cmd.log
check "ebb.agent=0 kept the agent from starting" sh -c '! grep -q "ebb-agent started" cmd.log'
check "the guest powered off by itself (not killed after ${GUEST_TIMEOUT_S}s)" [ "$timed_out" = 0 ]
[ "$bad" = 0 ] || show_log cmd.log

# 2. /ebb/run from a cpio appended with busybox in the box.
bad=0
mkdir -p extra/ebb
printf 'echo "run-script: $(ls /usr/bin | wc -l) files in /usr/bin"\n' >extra/ebb/run
(cd extra && find . | cpio -o -H newc 2>/dev/null) | gzip >extra.cpio.gz
cat "$GUEST_INITRD" extra.cpio.gz >guest-run.img
boot_guest guest-run.img run.log
# Not anchored: the agent (started here) may write to the console mid-line.
check "/ebb/run from an appended cpio ran and exited 0 (${secs}s)" \
	sh -c 'grep -q "run-script: [0-9]* files" run.log && grep -q "^ebb-guest: exit 0" run.log'
if [ -x "$EBB_BIN/ebb-agent" ]; then
	check "/bin/ebb-agent was started by default" grep -q 'ebb-agent started' run.log
fi
[ "$bad" = 0 ] || show_log run.log
exit 0
