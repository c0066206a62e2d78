/*
 * vmm/logcap.h — the size cap of a detached VM's log (NAME.log in the
 * runtime directory, often a tmpfs, i.e. host RAM).  What the VMM writes
 * there includes the guest's console, which a guest controls entirely, so
 * the file must not grow without bound.
 *
 * `ebb run --detach` sends its stdout and stderr into a pipe; a small writer
 * process copies the pipe into NAME.log.  When the next chunk would take the
 * file past max_bytes, NAME.log is renamed to NAME.log.1 (replacing the
 * previous one) and a new NAME.log is started whose first line says so:
 * the newest max_bytes..2*max_bytes of output are kept, the oldest dropped,
 * and the two files never hold more than 2 * max_bytes.
 *
 * Files are created fresh (unlink, then O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC,
 * mode 0600): a symlink planted at either name is never followed.
 */
#ifndef EBB_VMM_LOGCAP_H
#define EBB_VMM_LOGCAP_H

#include <stdint.h>

#define VMM_LOGCAP_DEFAULT_MAX_BYTES (1ull << 20)
#define VMM_LOGCAP_MIN_MAX_BYTES 4096ull

struct vmm_logcap_stats {
	uint64_t nr_bytes_in;       /* read from the pipe */
	uint64_t nr_bytes_dropped;  /* rotated out, or lost to write errors */
	uint64_t nr_rotations;
};

/* Opens path fresh as described above: fd, or -errno. */
int vmm_logcap_open(const char *path);

/*
 * Copies in_fd to path until EOF on in_fd, within the cap (max_bytes below
 * VMM_LOGCAP_MIN_MAX_BYTES is raised to it).  Write errors do not stop the
 * copy: the pipe is drained to its end so the writers never get SIGPIPE.
 * Returns 0, or -errno when path could not be opened at first (the pipe is
 * still drained).  stats is optional.
 */
int vmm_logcap_copy(int in_fd, const char *path, uint64_t max_bytes,
		    struct vmm_logcap_stats *stats);

#endif
