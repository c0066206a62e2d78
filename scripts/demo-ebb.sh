# scripts/demo-ebb.sh: the ebb VMM part of `make demo`, run inside the
# host-box after scripts/demo-box.sh (a scenario for tests/box/run; contract
# in docs/box.md).  Boots two VMs with `ebb run`, shows `ebb ls` and
# `ebb stat` while they run, then tells each guest (through its serial
# console) to power off and shows ebb exiting 0.  Prints TAP lines.

export EBB_RUNTIME_DIR=$PWD/rt
now() { cut -d' ' -f1 /proc/uptime; }
say() { echo "$*"; }

# launch NAME MEM: ebb run in the background, console to NAME.log (lines
# stamped with the box uptime), console input from NAME.in.
launch() {
	mkfifo "$1.in"
	script='echo "hello from '"$1"': $(grep -c ^processor /proc/cpuinfo) CPU, $(grep MemTotal /proc/meminfo | tr -s " " | cut -d" " -f2-)"
echo "guest-waiting for a line on the console"
read -r -t 300 line
echo "guest-got: $line"'
	( "$EBB" run --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --mem "$2" --cpus 1 --name "$1" \
		--ready-marker "ebb-guest: ready" \
		--cmdline "quiet ebb.agent=0 ebb.cmd=$(printf '%s\n' "$script" | base64 | tr -d '\n')" \
		<>"$1.in" 2>"$1.err"; echo "ebb-exit: $?" ) | tr -d '\r' |
		while IFS= read -r l; do echo "$(now) $l"; done >"$1.log" &
}
wait_for() { # FILE PATTERN SECONDS
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -gt $(($3 * 5)) ] && return 1; sleep 0.2
	done
}

say ""
say "== ebb's own VMM: two VMs =="
say "ebb run boots the same guest image with ebb's VMM (KVM, 64-bit Linux boot"
say "protocol, MP table, 16550A console, i8042 reset, PCI host bridge), one"
say "process per VM, each with a control socket in \$EBB_RUNTIME_DIR."
say "  \$ ebb run --kernel vmlinuz --initrd initrd.img --mem 256M --cpus 1 --name web1"
say "  \$ ebb run --kernel vmlinuz --initrd initrd.img --mem 384M --cpus 1 --name db1"
t0=$(now)
launch web1 256M
launch db1 384M
ok=0
wait_for web1.log guest-waiting 300 && wait_for db1.log guest-waiting 300 && ok=1
for n in web1 db1; do
	grep -E 'ebb-guest: ready|hello from' "$n.log" | sed "s/^\([0-9.]*\) /  $n> [box t=\1s] /"
done
[ "$ok" = 1 ] && echo "ok - two ebb VMs booted and ran their scripts" ||
	echo "not ok - the ebb VMs did not both boot"
say ""
say "  \$ ebb ls"
"$EBB" ls | sed 's/^/  /'
say "  \$ ebb stat web1"
"$EBB" stat web1 | sed 's/^/  /'
"$EBB" ls | grep -q '^web1 .*running' && "$EBB" ls | grep -q '^db1 .*running' &&
	echo "ok - ebb ls shows both VMs running" || echo "not ok - ebb ls does not show both VMs"
say ""
say "Telling each guest to finish (a line on its console); init then runs poweroff -f,"
say "ebb sees the kernel halt and exits 0:"
for n in web1 db1; do echo "power off, please" >"$n.in"; done
wait_for web1.log 'ebb-exit:' 120
wait_for db1.log 'ebb-exit:' 120
for n in web1 db1; do
	grep -E 'guest-got|ebb-guest: exit|ebb-exit' "$n.log" | sed "s/^[0-9.]* /  $n> /"
	sed "s/^/  $n stderr> /" "$n.err"
done
grep -q 'ebb-exit: 0' web1.log && grep -q 'ebb-exit: 0' db1.log &&
	echo "ok - both guests powered off and ebb exited 0" || echo "not ok - a VM did not end cleanly"
say "  \$ ebb ls"
"$EBB" ls | sed 's/^/  /'
exit 0
