# top_ebb: `ebb top` against a real ebb VM under KVM (docs/operations.md).
#   One run: 52 s in the box; RES 183 MiB in ebb top and in ebb stat.
#   With the balloon and the idle tick (a later run, 47 s): 64 MiB out by
#   the guest's driver in 7.4 s, back in 0.3 s; WSS 133M of RES 183M.
#   A VM of 256 MiB under the reclaim engine writes 96 MiB of patterns and
#   verifies them in a loop.  `ebb top -b -n 2` shows its row, and its RES
#   agrees with the resident memory `ebb stat` reports (within 8 MiB: the two
#   are read a moment apart).  With ebbd running, the pool line appears and
#   the VM's row gets ebbd's working-set estimate; with ebbd stopped again,
#   the VMs-only line.  `ebb balloon t1 192M --wait` and `100% --wait`
#   against the guest's real driver each end "reached".  The guest's
#   patterns verify with no bad page.
# box-cost: 125 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)
. /ebb/lib/scenario.sh   # start, wait_for, check, dump, field, now (docs/box.md)

start t1 t1.log 'pattern fill 96 7 0 2' --mem 256M --reclaim on
wait_for t1.log 'pattern: filled' 400
r=$?
check $r "guest booted under the reclaim engine and wrote 96 MiB of patterns"
if [ $r -ne 0 ]; then
	dump t1.log
	exit 1
fi
wait_for t1.log 'verify round 1 ' 120

"$EBB" top -b -n 2 -d 1 >top1.txt 2>&1
r=$?
"$EBB" stat t1 --json >s.json 2>&1
res_stat=$(( $(field s.json resident_pages) * 4096 >> 20 ))
res_top=$(awk '$1 == "t1" { r = $2 } END { print r }' top1.txt | tr -d M)
d=$(( ${res_top:-0} - res_stat ))
[ $r -eq 0 ] && [ -n "$res_top" ] && [ ${d#-} -le 8 ] && grep -q 'ebbd is not running' top1.txt
check $? "ebb top -b -n 2 (status $r): t1's RES ${res_top:-?} MiB, ebb stat's resident $res_stat MiB; no ebbd: VMs only"
sed 's/^/# top| /' top1.txt | tail -n 4

# ebb balloon --wait against the guest's real driver: 64 MiB out, then back
"$EBB" balloon t1 192M --wait=120 >bw1.txt 2>&1
r1=$?
"$EBB" balloon t1 100% --wait=120 >bw2.txt 2>&1
r2=$?
grep -q '^t1: reached: balloon 64 MiB, the guest has 192 MiB' bw1.txt &&
	grep -q '^t1: reached: balloon 0 bytes, the guest has 256 MiB' bw2.txt && [ $r1 -eq 0 ] && [ $r2 -eq 0 ]
check $? "ebb balloon --wait with the guest's driver: 192M (status $r1: $(grep -h 'reached\|stalled\|gave up' bw1.txt)), 100% (status $r2: $(grep -h 'reached\|stalled\|gave up' bw2.txt))"
sed 's/^/# balloon| /' bw1.txt | tail -n 3

"$EBB_BIN/ebbd" --budget 400M --vms-only --no-ksm --log ebbd.log &
ebbd=$!
wait_for ebbd.log 't1 joins the pool' 30
sleep 3
"$EBB" top -b -n 2 -d 1 >top2.txt 2>&1
r=$?
wss=$(awk '$1 == "t1" { w = $7 } END { print w }' top2.txt)
grep -q '^pool: budget 400M' top2.txt && [ $r -eq 0 ] && [ -n "$wss" ] && [ "$wss" != "-" ]
check $? "with ebbd: the pool line and t1's working set (${wss:-?}) in ebb top"
sed 's/^/# top| /' top2.txt | tail -n 5
kill -TERM $ebbd
wait $ebbd
check $? "ebbd exits cleanly"

"$EBB" stop t1 >/dev/null 2>&1
wait_for t1.log 'ebb-exit:' 60
bad=$(grep 'verify round' t1.log | grep -vc 'bad_pages=0 ')
rounds=$(grep -c 'verify round' t1.log)
[ "$rounds" -ge 1 ] && [ "$bad" -eq 0 ]
check $? "the guest's patterns: $rounds verify rounds, $bad with bad pages"
exit $fail
