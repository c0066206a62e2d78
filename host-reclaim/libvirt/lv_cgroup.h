/*
 * host-reclaim/libvirt/lv_cgroup.h — host-side reclaim of a QEMU process
 * through its cgroup v2 memory.reclaim (the kernel's proactive reclaim,
 * Linux 5.19+), where the host has it and the cgroup holds that QEMU alone;
 * the libvirt backend falls back to process_madvise(MADV_PAGEOUT) otherwise
 * (docs/libvirt.md "Host-side reclaim").
 *
 * Kept apart from the driver, with the /proc root as a parameter, so that
 * a unit test runs the discovery against a fake tree (no cgroup2 memory
 * controller needed): tests/unit/test_libvirt_cgroup.c.
 *
 * HOST-INPUT: everything read from /proc and cgroupfs is bounded and
 * checked (line lengths, paths absolute with no "." / ".." / empty
 * components and no control characters, pids as whole numbers).
 */
#ifndef EBB_EBBD_LV_CGROUP_H
#define EBB_EBBD_LV_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cgroup directory longer than this is not used (the fallback is). */
#define EBBD_LV_CG_PATH_MAX 512

/*
 * The cgroup v2 directory whose memory.reclaim reclaims process @pid's
 * memory and nothing else's.  @proc_root is "/proc" (a test passes its
 * own tree: PROC_ROOT/PID/cgroup, PROC_ROOT/self/mountinfo).
 *
 * Steps: the "0::/path" line of PROC_ROOT/PID/cgroup; the first cgroup2
 * mount of PROC_ROOT/self/mountinfo whose root is "/"; from MOUNT/path up
 * past threaded cgroups (cgroup.type "threaded": libvirt's emulator/ and
 * vcpuN/ under the domain's libvirt/ group; memory is charged to the
 * threaded domain above them); there memory.reclaim must exist and be
 * writable, cgroup.procs must list @pid and no other process (for a
 * threaded domain it lists the whole threaded subtree) and every child
 * cgroup must be threaded (a domain child could hold other processes,
 * which memory.reclaim would reclaim from too).
 *
 * 0 with the directory in @dir, or -errno (ebbd_lv_cgroup_why() says it
 * in words): -ENOENT no cgroup v2 line, no cgroup2 mount or no
 * memory.reclaim (cgroup v1 memory controller, kernel before 5.19);
 * -EACCES memory.reclaim not writable; -EBUSY other processes in the
 * cgroup or a domain child cgroup; -ESRCH @pid not in its cgroup.procs
 * (gone or moved); -ENAMETOOLONG path or line over the bounds; -EINVAL a
 * malformed line or path.
 */
int ebbd_lv_cgroup_find(const char *proc_root, int pid, char *dir, size_t dir_len);

/* Why ebbd_lv_cgroup_find() said no, for the log. */
const char *ebbd_lv_cgroup_why(int err);

/*
 * Asks the kernel to reclaim @bytes from the cgroup @dir (writes the
 * number to its memory.reclaim; the write returns when the reclaim is
 * done).  0: all of it; -EAGAIN: the kernel reclaimed less than asked
 * (not an error: nothing more was reclaimable in its retries, or a signal
 * stopped it (EINTR); the next round asks again from the new Rss); other
 * -errno: the write failed.
 */
int ebbd_lv_cgroup_reclaim(const char *dir, uint64_t bytes);

/* Is there any host swap (/proc/swaps lists one)?  Host-side reclaim of
 * anonymous guest RAM, either mechanism, needs somewhere to put it. */
bool ebbd_lv_host_has_swap(void);

#endif
