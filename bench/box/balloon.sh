# box-needs: qemu
# The in-box half of bench/balloon_box.sh (a box scenario, run by that script,
# not by make check-e2e): inflate and deflate 1 GiB of a 2 GiB guest, 1 vCPU,
# under ebb and under QEMU's virtio-balloon (-accel kvm), same guest kernel
# and image, one after the other in the same box.  The guest first touches
# and frees nearly all its memory (memhog), so the pages it balloons are
# backed on the host.  Free page reporting and deflate-on-OOM are off in
# both.  The host drives each balloon through its control interface (ebb
# balloon / QMP "balloon") and polls until the driver's actual count reaches
# the target: the time includes the guest driver's work and the round trips.
# Prints "bench-figure: KEY VALUE" lines that bench/balloon_box.sh reports.

. /ebb/lib/scenario.sh   # wait_for, check, field, now (docs/box.md)
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fig() { echo "bench-figure: $1 $2"; }
GIB=1073741824
script='memhog -l 64 -s 8 -t 0 >/dev/null
echo b-touched
read -r -t 900 l
echo b-done'
cmdline="quiet ebb.agent=0 ebb.cmd=$(printf '%s\n' "$script" | b64)"

# ---- ebb ----------------------------------------------------------------------
mkfifo ebb.in
exec 3<>ebb.in
"$EBB" run --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --mem 2G --cpus 1 --name bench \
	--free-page-reporting off --balloon-oom off --cmdline "$cmdline" <&3 >ebb.log 2>&1 &
wait_for ebb.log b-touched 300
check $? "ebb: 2 GiB guest booted and touched its memory"
pid=$("$EBB" stat bench --json | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
# ebb_wait PAGES: until actual_pages == PAGES
ebb_wait() {
	i=0
	while :; do
		"$EBB" balloon bench --json >b.json 2>&1
		[ "$(field b.json actual_pages)" = "$1" ] && return 0
		i=$((i + 1)); [ $i -gt 1500 ] && return 1
		sleep 0.05
	done
}
rss0=$(rss_kb "$pid")
t0=$(now)
"$EBB" balloon bench 1G >/dev/null
ebb_wait 262144
check $? "ebb: the balloon reached 1 GiB"
t1=$(now)
rss1=$(rss_kb "$pid")
"$EBB" balloon bench 100% >/dev/null
ebb_wait 0
check $? "ebb: the balloon deflated to 0"
t2=$(now)
fig ebb_inflate_s "$(awk "BEGIN { print $t1 - $t0 }")"
fig ebb_deflate_s "$(awk "BEGIN { print $t2 - $t1 }")"
fig ebb_rss_drop_mib $(((rss0 - rss1) / 1024))
fig ebb_madvise_calls "$(field b.json madvise_calls)"
fig ebb_discarded_pages "$(field b.json discarded_pages)"
fig ebb_madvise_ns "$(field b.json madvise_ns)"
echo next >&3
wait_for ebb.log 'powered off' 60
exec 3>&-
[ "$fail" = 0 ] || tail -n 20 ebb.log | sed 's/^/# ebb| /'

# ---- QEMU ---------------------------------------------------------------------
command -v qemu-system-x86_64 >/dev/null || { echo "no QEMU in the box"; exit 77; }
mkfifo q.in
exec 4<>q.in
qemu-system-x86_64 -accel kvm -cpu host -m 2048 -smp 1 -nodefaults -display none -monitor none \
	-serial stdio -no-reboot -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" \
	-device virtio-balloon-pci -qmp unix:$PWD/qmp.sock,server=on,wait=off \
	-append "console=ttyS0 panic=-1 $cmdline" <&4 >q.log 2>&1 &
qpid=$!
wait_for q.log b-touched 300
check $? "qemu: 2 GiB guest booted and touched its memory"
qmp() { unixcat -t 10 -w "$2" qmp.sock '{"execute":"qmp_capabilities"}' "$1"; }
# q_wait BYTES: until query-balloon's actual == BYTES
q_wait() {
	i=0
	while :; do
		qmp '{"execute":"query-balloon","id":"q"}' '"actual"' >q.json 2>&1
		[ "$(sed -n 's/.*"actual": *\([0-9]*\).*/\1/p' q.json)" = "$1" ] && return 0
		i=$((i + 1)); [ $i -gt 1500 ] && return 1
		sleep 0.05
	done
}
rss0=$(rss_kb "$qpid")
t0=$(now)
qmp "{\"execute\":\"balloon\",\"arguments\":{\"value\":$GIB},\"id\":\"set1\"}" '"set1"' >q.set
grep -q '"return"' q.set
check $? "qemu: QMP accepted the balloon target ($(tr -d '\n' <q.set | tail -c 80))"
q_wait $GIB
check $? "qemu: the balloon reached 1 GiB"
t1=$(now)
rss1=$(rss_kb "$qpid")
qmp "{\"execute\":\"balloon\",\"arguments\":{\"value\":$((2 * GIB))},\"id\":\"set2\"}" '"set2"' >q.set
q_wait $((2 * GIB))
check $? "qemu: the balloon deflated to 0"
t2=$(now)
fig qemu_inflate_s "$(awk "BEGIN { print $t1 - $t0 }")"
fig qemu_deflate_s "$(awk "BEGIN { print $t2 - $t1 }")"
fig qemu_rss_drop_mib $(((rss0 - rss1) / 1024))
echo next >&4
wait_for q.log 'b-done' 60
sleep 2
kill "$qpid" 2>/dev/null
exec 4>&-
[ "$fail" = 0 ] || tail -n 20 q.log | sed 's/^/# qemu| /'
exit 0
