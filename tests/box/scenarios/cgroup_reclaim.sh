# cgroup_reclaim: ebbd's host-side reclaim through a cgroup v2 memory.reclaim
# (host-reclaim/libvirt/lv_cgroup.c; docs/libvirt.md "Host-side reclaim"),
# which this machine cannot run: its memory controller is bound to cgroup v1.
# The box's kernel has none bound: the scenario mounts cgroup2 at
# /sys/fs/cgroup (the box's init mounts no cgroup), puts 256 MiB of zram swap
# on (anonymous pages need swap to be reclaimed), and runs
# tests/integration/itest_cgroup_reclaim: a 64 MiB process alone in its own
# cgroup, then in a threaded emulator/ under it (libvirt's layout), reclaimed
# through the same ebbd_lv_cgroup_find()/ebbd_lv_cgroup_reclaim() the
# libvirt backend calls; its RSS must fall by 48 MiB or more and its data
# read back bit-identical; a second process in the cgroup must make ebbd
# refuse it.  Swap and the mount are undone at the end.
# Scenario contract: docs/box.md.
# box-cost: 10 (seconds in a box beside a second one, as make check-e2e runs them: tests/box/run-all deals scenarios out by it)

if [ ! -e /sys/block/zram0 ] && ! modprobe zram num_devices=1 2>/dev/null; then
	echo "no zram on box kernel $(uname -r) (images built before zram was added to the box? make images)"
	exit 77
fi
mounted=0
if ! grep -q ' - cgroup2 ' /proc/self/mountinfo; then
	mkdir -p /sys/fs/cgroup
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || { echo "cannot mount cgroup2"; exit 77; }
	mounted=1
fi
echo 256M >/sys/block/zram0/disksize || { echo "zram0: cannot set its size"; exit 77; }
mkswap /dev/zram0 >/dev/null && swapon /dev/zram0 || { echo "zram0: no swap"; exit 77; }
echo "# kernel $(uname -r); swap: $(tail -n +2 /proc/swaps | tr -s ' ')"

/ebb/tests/itest_cgroup_reclaim
status=$?

swapoff /dev/zram0
echo 1 >/sys/block/zram0/reset
[ "$mounted" = 1 ] && umount /sys/fs/cgroup
exit "$status"
