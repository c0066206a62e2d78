# balloon_ebb: ebb's virtio console and balloon end to end under real KVM in
# the host-box.  Two boots of a 512 MiB, 1 vCPU guest, each doing a lot:
#   A  free page reporting and deflate-on-OOM off: the guest sees both virtio
#      devices (console 0x0003, balloon 0x0005); hvc0 output reaches ebb's
#      console and console input reaches hvc0; the agent answers hello through RUNDIR/vm-a.agent (0600);
#      after the guest touched nearly all its memory and freed it,
#      `ebb balloon vm-a 50%` shrinks MemTotal by >= 90% of the balloon and
#      drops ebb's VmRSS by >= 90% of it; `ebb balloon vm-a 100%` gives it
#      back; stats arrive; `ebb stat` shows the balloon; bad sizes are refused.
#   B  free page reporting and deflate-on-OOM on: a guest that allocates and
#      frees 150 MiB returns >= 80% of it to the host within 10 s without the
#      balloon; with the balloon holding 60% of its RAM, a guest that
#      allocates past what is left gets pages back (oom_deflated_pages > 0)
#      instead of an OOM kill.
# Scenario contract: docs/box.md.  Figures go to '#' lines.
# box-timeout: 1800
# box-cost: 600 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

. /ebb/lib/scenario.sh   # start, wait_for, check, dump, field, now (docs/box.md)
# Console input from fd 3 (a fifo), agent on.
START_INPUT=fifo START_AGENT=1
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# wait_balloon NAME SECONDS: until actual_pages == target_pages (balloon.json)
wait_balloon() {   # VM TIMEOUT_S: until actual == target; says how long, or where it stopped
	i=0 last= moved=0
	while :; do
		"$EBB" balloon "$1" --json >balloon.json 2>&1
		t=$(field balloon.json target_pages) a=$(field balloon.json actual_pages)
		if [ -n "$t" ] && [ "$t" = "$a" ]; then
			echo "# $1: balloon at its target ($t pages) after $((i / 2)) s"
			return 0
		fi
		[ "$a" != "$last" ] && moved=$i last=$a
		i=$((i + 1))
		if [ "$i" -gt $(($2 * 2)) ]; then
			echo "# $1: balloon at $a of $t pages after $2 s, last moved $(((i - moved) / 2)) s before"
			return 1
		fi
		sleep 0.5
	done
}
meminfo_kb() { # LOG TAG: the value the guest printed as "TAG: N" (whole lines only:
	# hvc0's output may land in the middle of a serial line, and a torn value is none)
	tr -d "\r" <"$1" | sed -n "s/^.*$2: \([0-9][0-9]*\)\$/\1/p" | tail -n 1
}

# ---- A ----------------------------------------------------------------------
script_a='echo "g-virtio: $(cat /sys/bus/virtio/devices/*/device | tr "\n" " ")"
(i=0; while [ ! -c /dev/hvc0 ] && [ $i -lt 300 ]; do sleep 1; i=$((i + 1)); done
echo "g-hvc0-after: $i s"; echo "hvc-hello-from-guest" >/dev/hvc0) &
memhog -l 24 -s 8 -t 0 >/dev/null
echo "g-memtotal0: $(awk "/MemTotal/ {print \$2}" /proc/meminfo)"
echo "g-touched"
read -r -t 300 l
echo "g-memtotal1: $(awk "/MemTotal/ {print \$2}" /proc/meminfo)"
read -r -t 300 l
echo "g-memtotal2: $(awk "/MemTotal/ {print \$2}" /proc/meminfo)"
echo g-hvc-reading
for i in 1 2 3 4 5 6; do
	read -r -t 120 h </dev/hvc0 || break; echo "g-hvc-got: $h"; [ "$h" = hvc-input-line ] && break
done
read -r -t 5 l
echo g-done'
start vm-a a.log "$script_a" --mem 512M --free-page-reporting off --balloon-oom off
# Touching the guest's RAM is one engine fault per page: 1 GiB took 95-100 s
# in a quiet box, 347 s in a CI run beside a second box, hence 512 MiB.  A
# milestone, not a speed check.
wait_for a.log 'g-touched' 600
check $? "A: guest booted (512 MiB) and touched, then freed, nearly all its memory"
grep -q 'g-virtio: .*0x0003' a.log && grep -q 'g-virtio: .*0x0005' a.log
check $? "A: the guest sees a virtio console and a virtio balloon ($(grep -m1 g-virtio a.log | cut -d' ' -f2-))"
# hvc0 appears once the console driver has its ports (PORT_ADD over the
# control queue, after the script may already run): the guest waits for it
# in the background.  Anywhere in a line: hvc0 and the serial console share
# ebb's stdout, and the serial port may still be draining a line.
wait_for a.log 'hvc-hello-from-guest' 120
check $? "A: output on the guest's hvc0 (virtio console port 0) reaches ebb's console (hvc0 there $(grep -m1 -o 'g-hvc0-after: [0-9]* s' a.log | cut -d' ' -f2-) into the script)"
pid=$("$EBB" stat vm-a --json | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
ls -l rt/vm-a.agent 2>/dev/null | grep -q '^srw-------'
check $? "A: the agent socket rt/vm-a.agent exists with mode 0600"
unixcat -t 30 -w '"type":"hello"' rt/vm-a.agent \
	'{"type":"hello","id":1,"version":1,"client":"box"}' >hello.out 2>&1
grep -q '"agent":"ebb-agent"' hello.out
check $? "A: the guest agent answers hello over the org.ebb.agent.0 port ($(head -c 100 hello.out))"
"$EBB" stat vm-a >stat.out 2>&1
grep -q '^balloon: *target 0 bytes (guest 512 MiB), actual 0 bytes' stat.out
check $? "A: ebb stat shows the balloon (empty): $(grep -m1 '^balloon' stat.out)"
if ! grep -q '^balloon' stat.out; then
	# what the VM answered: its size (the client's limit is 16 KiB) and
	# anything json-c may refuse (ebb stat said: $(head -c 100 stat.out))
	unixcat -t 10 -n 1 rt/vm-a.sock '{"id":1,"version":1,"cmd":"query"}' >query.raw 2>&1
	echo "# raw query reply: $(wc -c <query.raw) bytes, $(grep -c '' query.raw) lines; odd values: $(grep -oiE '(nan|inf|infinity)[,}]' query.raw | sort | uniq -c | tr '\n' ' ')"
	head -c 600 query.raw | sed 's/^/# query| /'
fi

mt0=$(meminfo_kb a.log g-memtotal0)
rss0=$(rss_kb "$pid")
x0=$("$EBB" stat vm-a --json | sed -n 's/.*"nr_mmio_exits": *\([0-9]*\).*/\1/p')
t0=$(now)
"$EBB" balloon vm-a 50% >bal.out 2>&1
check $? "A: ebb balloon vm-a 50% accepted ($(head -n 1 bal.out))"
wait_balloon vm-a 120
check $? "A: the guest's balloon reached its target (actual $(field balloon.json actual_pages) of $(field balloon.json target_pages) pages)"
t1=$(now)
rss1=$(rss_kb "$pid")
x1=$("$EBB" stat vm-a --json | sed -n 's/.*"nr_mmio_exits": *\([0-9]*\).*/\1/p')
echo "# A: MMIO exits to ebb during the inflate: $((${x1:-0} - ${x0:-0})); balloon kicks that exited instead of hitting the ioeventfd: $(field balloon.json exit_kicks)"
actual=$(field balloon.json actual_pages)
bal_kb=$((${actual:-0} * 4))
echo "# A: inflate of $((bal_kb / 1024)) MiB took $(awk "BEGIN { print $t1 - $t0 }") s; VmRSS $rss0 -> $rss1 kB; $(field balloon.json madvise_calls) madvise calls for $(field balloon.json discarded_pages) pages in $(field balloon.json madvise_ns) ns"
[ "$bal_kb" -gt $((256 * 1024 * 99 / 100)) ] && [ $((rss0 - rss1)) -ge $((bal_kb * 9 / 10)) ]
check $? "A: ebb's VmRSS dropped by $(((rss0 - rss1) / 1024)) MiB, >= 90% of the $((bal_kb / 1024)) MiB ballooned"
calls=$(field balloon.json madvise_calls) pages=$(field balloon.json discarded_pages)
[ -n "$calls" ] && [ "$calls" -gt 0 ] && [ "$calls" -lt $((pages / 8)) ]
check $? "A: pages go back in merged runs ($calls MADV_DONTNEED calls for $pages pages)"
echo next >&3
wait_for a.log 'g-memtotal1' 60
mt1=$(meminfo_kb a.log g-memtotal1)
[ -n "$mt0" ] && [ -n "$mt1" ] && [ $((mt0 - mt1)) -ge $((bal_kb * 9 / 10)) ]
check $? "A: the guest's MemTotal shrank $mt0 -> $mt1 kB (>= 90% of the balloon)"
"$EBB" stat vm-a >stat.out 2>&1
grep -q '^balloon: *target 256 MiB (guest 256 MiB), actual 256 MiB' stat.out
check $? "A: ebb stat: $(grep -m1 '^balloon' stat.out)"

t0=$(now)
"$EBB" balloon vm-a 100% >bal.out 2>&1
wait_balloon vm-a 120 && [ "$(field balloon.json actual_pages)" = 0 ]
check $? "A: ebb balloon vm-a 100% deflates the balloon to 0 pages"
echo "# A: deflate took $(awk "BEGIN { print $(now) - $t0 }") s"
echo next >&3
wait_for a.log 'g-memtotal2' 60
mt2=$(meminfo_kb a.log g-memtotal2)
[ -n "$mt2" ] && [ "$mt2" = "$mt0" ]
check $? "A: MemTotal is back to $mt0 kB ($mt2)"
"$EBB" balloon vm-a --stats >stats.out 2>&1
grep -q 'guest stats: [0-9.]*s old' stats.out && grep -q 'free_memory' stats.out &&
	grep -q 'total_memory' stats.out
check $? "A: the guest's balloon stats arrive: $(grep 'guest stats\|total_memory' stats.out | tr -s ' ' | tr '\n' ';')"
sed 's/^/# stats| /' stats.out
"$EBB" balloon vm-a 150% >bad.out 2>&1
[ $? -ne 0 ] && grep -q 'bad percentage' bad.out
check $? "A: ebb balloon vm-a 150% is refused: $(cat bad.out)"
"$EBB" balloon vm-a 2G >bad.out 2>&1
[ $? -ne 0 ] && grep -q "more than the guest's RAM" bad.out
check $? "A: a size above the guest's RAM is refused: $(cat bad.out)"
"$EBB" balloon vm-a lots >bad.out 2>&1
[ $? -ne 0 ] && grep -q 'bad size' bad.out
check $? "A: a bad size is refused: $(cat bad.out)"
"$EBB" balloon nosuch 50% >bad.out 2>&1
[ $? -ne 0 ] && grep -q 'no VM named' bad.out
check $? "A: an unknown VM is refused: $(cat bad.out)"
wait_for a.log 'g-hvc-reading' 60
sleep 1
echo hvc-input-line >&3
wait_for a.log 'ebb-exit:' 60
grep -q 'g-hvc-got: hvc-input-line' a.log
check $? "A: console input reaches the guest's hvc0 as well ($(grep 'g-hvc-got' a.log | cut -d' ' -f2- | tr '\n' ' '))"
grep -q 'ebb-exit: 0' a.log
check $? "A: the guest powered off, ebb exited 0"
exec 3>&-
[ "$fail" = 0 ] || dump a.log

# ---- B ----------------------------------------------------------------------
fail=0
script_b='echo g-up
read -r -t 300 l
memhog -l 0 -s 4 -m 150 -t 4
echo "g-freed"
read -r -t 300 l
memhog -l 0 -s 4 -m 300 -t 1; echo "g-hog2-exit: $?"
grep -E "^(MemTotal|MemFree)" /proc/meminfo
read -r -t 300 l
echo g-done'
start vm-b b.log "$script_b" --mem 512M --free-page-reporting on --balloon-oom on
wait_for b.log 'g-up' 300
check $? "B: guest booted with free page reporting and deflate-on-OOM"
pid=$("$EBB" stat vm-b --json | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
sleep 5  # boot-time frees get reported first
echo next >&3
wait_for b.log 'memhog: held' 120
sleep 2
rss_hi=$(rss_kb "$pid")
wait_for b.log 'g-freed' 60
tf=$(now)
ok=1
while [ "$(awk "BEGIN { print ($(now) - $tf < 10) }")" = 1 ]; do
	rss=$(rss_kb "$pid")
	if [ $((rss_hi - rss)) -ge $((150 * 1024 * 8 / 10)) ]; then ok=0; break; fi
	sleep 0.5
done
"$EBB" balloon vm-b --json >balloon.json
echo "# B: VmRSS $rss_hi kB while holding 150 MiB -> $rss kB $(awk "BEGIN { print $(now) - $tf }") s after the free; reported $(field balloon.json reported_pages) pages"
check $ok "B: free page reporting gave back $(((rss_hi - rss) / 1024)) MiB of 150 MiB freed within 10 s (>= 80%)"
[ "$(field balloon.json target_pages)" = 0 ] && [ "$(field balloon.json ballooned_pages)" = 0 ]
check $? "B: ... without the balloon (target and ballooned pages are 0)"

"$EBB" balloon vm-b 40% >/dev/null 2>&1
wait_balloon vm-b 240
check $? "B: balloon at 60% of RAM (actual $(field balloon.json actual_pages) pages)"
echo next >&3
wait_for b.log 'g-hog2-exit' 240
"$EBB" balloon vm-b --json >balloon.json
oom=$(field balloon.json oom_deflated_pages)
grep -q 'g-hog2-exit: 0' b.log && grep -q 'memhog: held 300 MiB' b.log &&
	! grep -qi 'killed process' b.log
check $? "B: a guest allocating 300 MiB past its balloon got it without an OOM kill ($(grep -m1 'memhog: held 300' b.log | cut -d' ' -f2-))"
[ -n "$oom" ] && [ "$oom" -gt 0 ]
check $? "B: ... because the guest deflated on OOM ($oom pages, balloon now $(field balloon.json actual_pages) pages)"
echo next >&3
wait_for b.log 'ebb-exit:' 60
grep -q 'ebb-exit: 0' b.log
check $? "B: the guest powered off, ebb exited 0"
exec 3>&-
[ "$fail" = 0 ] || dump b.log
exit 0
