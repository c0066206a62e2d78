# fault_around: the cost of first touches with and without fault-around
# (docs/reclaim.md "Fault-around"), one 256 MiB VM after the other: boot to
# the ready line, a 96 MiB pattern fill in the guest, then (pattern exited,
# its memory free and reported) a balloon inflate to 50% and back.  Prints,
# per setting, seconds and the engine's fault counters for each phase.
# Not in the suite: a measurement (the settings run one after the other, so
# host load between them shows in the figures).
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
for fa in 1 16; do
	vm=vm-fa$fa
	t0=$(now)
	start $vm $vm.log 'read -r -t 900 go; pattern fill 96 7 1 0; echo fill-done; sleep 900' \
		--mem 256M --fault-around $fa
	wait_for $vm.log 'ebb-guest: ready' 600
	check $? "$vm booted"
	t1=$(now)
	snap $vm boot
	echo go >&3
	wait_for $vm.log 'fill-done' 600
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
	echo "# fault-around $fa: boot $(secs $t0 $t1) s, fill $(secs $t1 $t2) s, inflate $(secs $t3 $t4) s, deflate $(secs $t4 $t5) s"
	"$EBB" stop $vm >/dev/null 2>&1 || kill "$(field s.json pid)"
	wait_for $vm.log 'ebb-exit' 60
	exec 3>&-
done
exit $fail
