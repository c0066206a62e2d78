# box-needs: qemu
# scripts/demo-box.sh: the part of `make demo` that runs inside the host-box
# (a scenario for tests/box/run, contract in docs/box.md).  It narrates what
# the box is, proves /dev/kvm works with the KVM smoke test, and boots ebb's
# guest image under QEMU with KVM.  Prints TAP lines for what it checks.

say() { echo "$*"; }
say ""
say "== Inside the host-box =="
say "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) vCPUs, $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo) RAM"
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(svm|npt|vgif|nrip_save|decodeassists)$' | tr '\n' ' ')
say "virtualisation CPU flags QEMU emulates for us: ${flags:-none}"
say "kvm modules: $(lsmod | awk '$1 ~ /^(kvm|kvm_amd|irqbypass|ccp)$/ { printf "%s ", $1 }')"
say "kvm_amd nested=$(cat /sys/module/kvm_amd/parameters/nested) npt=$(cat /sys/module/kvm_amd/parameters/npt)"
if [ -c /dev/kvm ]; then
	say "$(ls -l /dev/kvm)"
	echo "ok - /dev/kvm is present in the box"
else
	echo "not ok - /dev/kvm is missing in the box"
fi

say ""
say "== KVM smoke test: a VM with real-mode code, port I/O and the dirty log =="
say "The guest writes pages {1,3,4,9} of a dirty-logged slot, sends values to"
say "ports 0x10 and 0x1234 and halts; then writes {2,9,15} and halts again."
say "KVM_GET_DIRTY_LOG must report exactly those pages each time."
"$EBB_PROGS/kvm_smoke"

say ""
say "== A Linux guest under KVM in the box =="
say "ebb's guest image (Debian kernel + busybox + virtio modules + init), under"
say "qemu-system-x86_64 -accel kvm for now; ebb's own VMM will take over here."
if command -v qemu-system-x86_64 >/dev/null; then
	cmd=$(printf 'echo "hello from the guest: $(uname -r), $(grep MemTotal /proc/meminfo)"\n' | base64 | tr -d '\n')
	t0=$(cut -d' ' -f1 /proc/uptime)
	timeout 180 qemu-system-x86_64 -accel kvm -cpu host -m 256 -smp 1 -nodefaults \
		-display none -monitor none -serial stdio -no-reboot \
		-kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
		-append "console=ttyS0 panic=-1 quiet ebb.agent=0 ebb.cmd=$cmd" </dev/null >guest.log 2>&1
	t1=$(cut -d' ' -f1 /proc/uptime)
	grep '^ebb-guest\|^hello' guest.log | sed 's/^/  guest> /'
	if grep -q '^ebb-guest: exit 0' guest.log; then
		echo "ok - the guest booted under KVM, ran its script and powered off in $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")s"
	else
		echo "not ok - the guest did not finish its script"
		tail -n 20 guest.log | sed 's/^/# guest| /'
	fi
else
	echo "ok - guest boot # SKIP no qemu-system-x86_64 in the box"
fi
