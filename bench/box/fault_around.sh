# The in-box half of bench/fault_around_box.sh (a box scenario run by that
# script, not by make check-e2e): what first touches of empty guest memory
# cost under ebb with fault-around (docs/reclaim.md "Fault-around"), without
# it, and with guest RAM left to the kernel (--reclaim off: plain anonymous
# memory, the kernel's own page faults, the peer).  One 256 MiB VM after the
# other: boot to the ready line, a 96 MiB pattern fill in the guest
# (verified), then, pattern exited and its memory freed and reported, a
# balloon inflate to 50 % and back.  Prints "bench-figure: KEY VALUE" lines
# (seconds and the engine's fault counters per phase) and the counters as
# '#' lines.  The settings run one after the other: host load between them
# shows in the figures.
# box-timeout: 1800

. /ebb/lib/scenario.sh
secs() { awk "BEGIN { printf \"%.1f\", $2 - $1 }"; }
mstat() { "$EBB" stat "$1" --json >"$2" 2>&1; }
snap() { # NAME TAG
	mstat "$1" s.json
	echo "# $1 $2 @$(now): faults=$(field s.json nr_faults) around=$(field s.json nr_fault_around)" \
		"zero_in=$(field s.json nr_zero_in) resident=$(field s.json resident_pages)" \
		"never=$(field s.json never_pages) ballooned=$(field s.json ballooned_pages)"
}
wait_balloon() { # NAME SECONDS: until actual == target
	i=0
	while [ $i -lt $(($2 * 2)) ]; do
		"$EBB" balloon "$1" --json >balloon.json 2>&1
		[ "$(field balloon.json actual_pages)" = "$(field balloon.json target_pages)" ] && return 0
		sleep 0.5
		i=$((i + 1))
	done
	return 1
}

START_INPUT=fifo
for fa in off 1 16; do
	vm=vm-fa$fa
	opt="--fault-around $fa"
	[ "$fa" = off ] && opt="--reclaim off"
	t0=$(now)
	start $vm $vm.log 'read -r -t 900 go; pattern fill 96 7 1 0 && echo fill-done || echo fill-FAILED; sleep 900' \
		--mem 256M $opt
	wait_for $vm.log 'ebb-guest: ready' 600
	check $? "$vm booted"
	t1=$(now)
	snap $vm boot
	echo go >&3
	wait_for $vm.log 'fill-done\|fill-FAILED' 600
	grep -q fill-done $vm.log
	check $? "$vm: pattern fill verified ($(grep -m1 'pattern: verify' $vm.log | cut -d' ' -f2-))"
	t2=$(now)
	snap $vm fill
	sleep 5
	t3=$(now)
	"$EBB" balloon $vm 50% >bal.out 2>&1
	wait_balloon $vm 600
	check $? "$vm: balloon inflated to 50%"
	t4=$(now)
	snap $vm inflate
	"$EBB" balloon $vm 100% >bal.out 2>&1
	wait_balloon $vm 600
	t5=$(now)
	snap $vm deflate
	echo "bench-figure: ${fa}_boot_s $(secs $t0 $t1)"
	echo "bench-figure: ${fa}_fill_s $(secs $t1 $t2)"
	echo "bench-figure: ${fa}_inflate_s $(secs $t3 $t4)"
	echo "bench-figure: ${fa}_faults $(field s.json nr_faults)"
	"$EBB" stop $vm >/dev/null 2>&1 || kill "$(field s.json pid)"
	wait_for $vm.log 'ebb-exit' 60
	exec 3>&-
done
exit $fail
