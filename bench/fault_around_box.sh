#!/usr/bin/env bash
# bench/fault_around_box.sh (make bench): boots the host-box once and runs
# bench/box/fault_around.sh in it: the first touches of empty guest memory
# (a boot, a 96 MiB fill, a 128 MiB balloon inflate; 256 MiB guest, 1 vCPU)
# under ebb with fault-around (the default, 16 pages), without it
# (--fault-around 1), and with guest RAM left to the kernel (--reclaim off:
# its own page faults, the peer), one after the other in the same box.
# Prints seconds per phase and each setting's ratio to the kernel's.
set -u
BUILD=${BUILD:-build}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
BUILD=$BUILD tests/box/run -t 1800 bench/box/fault_around.sh >"$out" 2>&1
status=$?
grep -v 'bench-figure' "$out" | grep -E '^(not )?ok|^# box|SKIP|fault_around.sh\| # vm' | sed 's/^/  /'
fig() { sed -n "s/.*bench-figure: $1 \([0-9.e+-]*\).*/\1/p" "$out" | head -n 1; }
for s in off 1 16; do
	for p in boot fill inflate; do
		[ -n "$(fig "${s}_${p}_s")" ] && continue
		echo "fault_around_box: figure ${s}_${p}_s missing (box output above; logs in $BUILD/box-logs)"
		exit 1
	done
done
awk -v ob="$(fig off_boot_s)" -v of="$(fig off_fill_s)" -v oi="$(fig off_inflate_s)" \
    -v nb="$(fig 1_boot_s)" -v nf="$(fig 1_fill_s)" -v ni="$(fig 1_inflate_s)" -v nn="$(fig 1_faults)" \
    -v fb="$(fig 16_boot_s)" -v ff="$(fig 16_fill_s)" -v fi="$(fig 16_inflate_s)" -v fn="$(fig 16_faults)" 'BEGIN {
	printf "first touches of empty memory, 256 MiB guest, 1 vCPU, in the host-box under KVM (seconds):\n"
	printf "  %-34s %8s %8s %10s %9s\n", "", "boot", "fill 96M", "inflate 128M", "faults"
	printf "  %-34s %8.1f %8.1f %10.1f %9s\n", "kernel (--reclaim off, the peer)", ob, of, oi, "-"
	printf "  %-34s %8.1f %8.1f %10.1f %9d\n", "ebb --fault-around 1 (off)", nb, nf, ni, nn
	printf "  %-34s %8.1f %8.1f %10.1f %9d\n", "ebb, fault-around 16 (default)", fb, ff, fi, fn
	printf "  time against the kernel: fault-around 16: boot %.2fx, fill %.2fx, inflate %.2fx;", fb/ob, ff/of, fi/oi
	printf " off: boot %.2fx, fill %.2fx, inflate %.2fx\n", nb/ob, nf/of, ni/oi
}'
exit $status
