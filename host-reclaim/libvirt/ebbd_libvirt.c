/*
 * host-reclaim/libvirt/ebbd_libvirt.c — the libvirt backend (see
 * ebbd_libvirt.h for what it maps and its threads; docs/libvirt.md).
 *
 * The worker's round:
 *   1. connected?  else virConnectOpen(uri) (backoff 1 s doubling to 10 s),
 *      keepalive (5 s x 3: a dead or hung libvirtd closes the connection),
 *      lifecycle, balloon-change and close callbacks;
 *   2. one virConnectGetAllDomainStats(STATE | BALLOON, ACTIVE): every
 *      running domain's numbers in one call, validated into the table;
 *      domains not in the answer are gone;
 *   3. per new domain: its XML (does it have a balloon, the ebb agent
 *      channel), its memtune; the stats period where it is off;
 *   4. balloon targets queued by apply(): virDomainSetMemoryFlags(LIVE);
 *   5. the daemon is told through the eventfd when a domain came or went;
 *   6. sleep until poll_ms passed or a callback / apply() kicks it.
 *
 * GUEST: the balloon statistics are the guest driver's numbers and the
 * rest is what libvirt says: a current above maximum, counters or
 * last-update going backwards, free memory above the guest's size are
 * clamped and counted (nr_bad_stats), rate-limit logged; a domain that
 * vanishes in the middle of a call is simply gone at the next poll.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "base/giveback.h"
#include "host-reclaim/ebbd/agent_link.h"
#include "host-reclaim/ebbd/backend.h"
#include "host-reclaim/ebbd/ebbd.h"
#include "host-reclaim/libvirt/ebbd_libvirt.h"
#include "host-reclaim/libvirt/lv_cgroup.h"
#include "host-reclaim/libvirt/lv_stats.h"

#define KIB 1024ull
#define MAX_DOMAINS 4096u
#define STALE_POLLS 5u                  /* snapshot older than this many periods: -ETIMEDOUT */
#define MEMTUNE_EVERY_POLLS 30u
#define RECONNECT_MIN_MS 1000u
#define RECONNECT_MAX_MS 10000u
#define BALLOON_NEAR_KIB 1024ull        /* within 1 MiB of the target: arrived */
#define AGENT_CHANNEL "org.ebb.agent.0"
#define STATS_WAIT_MIN_MS 3000u         /* a stats call not back by then is stuck */

/* One running domain, as the worker last saw it. */
struct lv_dom {
	char uuid[VIR_UUID_STRING_BUFLEN];
	char name[EBB_BAL_NAME_MAX];
	bool running;                /* in the latest poll's answer */
	bool attached;               /* a backend of ours is in the daemon's pool */
	int join_refused;            /* the daemon refused it (-errno; 0: not) ... */
	uint64_t refused_gen;        /* ... under this configuration generation */
	bool was_running;            /* running before this poll */
	bool probed;                 /* XML read */
	bool has_balloon, has_agent_channel;
	char agent_path[108];        /* the channel's unix socket ("": not one we can use) */
	struct ebbd_lv_stats st;     /* the snapshot (KiB as libvirt gives them) */
	/* the QEMU process and its guest RAM mapping (worker only) */
	int qemu_pid;                /* 0: not found (a remote URI, or no rights) */
	uint64_t ram_rss_kib;        /* Rss of the guest RAM mapping; 0: unknown */
	bool ram_found;
	uint64_t ram_start;          /* the mapping in QEMU's address space */
	/* host-side reclaim: the cgroup v2 memory.reclaim of QEMU's own cgroup
	 * where there is one (lv_cgroup.h), else process_madvise(MADV_PAGEOUT)
	 * on that mapping; decided for one QEMU pid */
	int cg_pid;                  /* the pid the choice was made for; 0: not yet */
	bool cg_use;                 /* memory.reclaim in cg_dir */
	char cg_dir[EBBD_LV_CG_PATH_MAX];
	uint64_t high_kib;           /* the balancer's high; 0: none */
	uint64_t pageout_kib;        /* queued by apply(), done by the worker */
	uint64_t pageout_cursor;     /* offset of the next range to page out */
	uint64_t qemu_majflt;        /* QEMU's major faults: host refaults of guest RAM */
	bool ram_mergeable;          /* the mapping is MADV_MERGEABLE (QEMU's mem-merge) */
	uint64_t ksm_merging_pages;  /* /proc/PID/ksm_merging_pages (clamped to the guest) */
	/* the domain's <metadata><ebb:memory .../> (EBBD_LIBVIRT_NS_URI) */
	bool meta_dirty;             /* a metadata-change event came */
	bool opt_out;                /* opt_out="yes": not managed */
	uint32_t meta_weight;        /* 0: default */
	uint64_t meta_min_kib, meta_low_kib;
	/* memtune, read only (0: none) */
	uint64_t min_guarantee_kib, soft_kib, hard_kib;
	uint32_t memtune_age;
	/* balloon */
	uint64_t want_kib;           /* queued by apply(), 0: nothing queued */
	uint64_t target_kib;         /* last set (0: never) */
	/* a balloon move being timed (a figure in the log): from the first set
	 * until current reaches the target or stops moving */
	uint64_t set_ns;             /* 0: none in flight */
	uint64_t move_from_kib, last_move_ns;
	uint64_t stop_ns;            /* a stop event came at this time */
};

/*
 * One bulk stats call on a thread of its own (stats_call()), so that a QEMU
 * that does not answer its monitor (stopped, hung) cannot stall the worker
 * and with it every other domain.  Freed by whichever of the worker and the
 * thread lets go of it last.
 */
struct stats_call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;
	bool done;
	virConnectPtr conn;          /* a reference of its own */
	virDomainStatsRecordPtr *recs;
	int n;
	char err[200];
	uint64_t t0;
};

struct ebbd_libvirt {
	struct ebbd_libvirt_cfg cfg;
	char uri[512];
	struct ebbd *d;
	int wake_fd;                 /* eventfd: the worker -> the daemon's loop */
	pthread_t worker;
	bool worker_started;
	/* worker only */
	virConnectPtr conn;
	int cb_lifecycle, cb_balloon, cb_metadata;
	uint32_t reconnect_ms;
	uint64_t next_connect_ns;
	struct ebb_ratelimit rl;
	struct stats_call *stuck;    /* a stats call that has not returned */
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, kick, conn_closed;
	bool have_swap;              /* host swap is on: host-side reclaim possible */
	struct lv_dom *doms;
	size_t nr_doms;
	struct ebbd_libvirt_counters c;
};

struct backend_lv {
	struct ebbd_backend be;
	struct ebbd_libvirt *src;
	char uuid[VIR_UUID_STRING_BUFLEN];
	char name[EBB_BAL_NAME_MAX];
	/* ebbd's configuration for the domain ([vm NAME], sent with `set`;
	 * the daemon's thread only): under the domain's metadata */
	struct ebbd_vm_settings cfg;
	char agent_path[108];        /* copied from the domain's XML at join */
	struct ebbd_agent_link agent;   /* the daemon's thread only */
};

/* ---- libvirt's process-wide parts ------------------------------------------ */

static pthread_once_t lv_once = PTHREAD_ONCE_INIT;
static int lv_once_ret;

/* libvirt prints errors to stderr by default: we read them ourselves. */
static void lv_quiet(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

static void *lv_event_thread(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			usleep(100000);
	return NULL;
}

/* The default event loop is libvirt's global: registered once per process,
 * run by one detached thread for the process's life. */
static void lv_init_once(void)
{
	pthread_t t;

	virSetErrorFunc(NULL, lv_quiet);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
		lv_once_ret = -EIO;
		return;
	}
	if (pthread_create(&t, NULL, lv_event_thread, NULL)) {
		lv_once_ret = -EAGAIN;
		return;
	}
	pthread_detach(t);
}

static const char *lv_err(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown libvirt error";
}

/* ---- the table (lock held) ------------------------------------------------- */

static struct lv_dom *dom_find(struct ebbd_libvirt *s, const char *uuid)
{
	size_t i;

	for (i = 0; i < s->nr_doms; i++)
		if (strcmp(s->doms[i].uuid, uuid) == 0)
			return &s->doms[i];
	return NULL;
}

static void wake_daemon(struct ebbd_libvirt *s)
{
	uint64_t one = 1;

	(void)!write(s->wake_fd, &one, sizeof(one));
}

static void kick_worker(struct ebbd_libvirt *s)
{
	pthread_mutex_lock(&s->lock);
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- callbacks (libvirt's event thread) ---------------------------------- */

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct ebbd_libvirt *s = opaque;
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct lv_dom *x;

	(void)conn;
	(void)detail;
	pthread_mutex_lock(&s->lock);
	s->c.nr_events++;
	/* A stop is known now: leave the pool at once, not at the next poll. */
	if ((event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_SHUTDOWN ||
	     event == VIR_DOMAIN_EVENT_CRASHED) && !virDomainGetUUIDString(dom, uuid) &&
	    (x = dom_find(s, uuid)) && event == VIR_DOMAIN_EVENT_STOPPED) {
		x->running = false;
		x->stop_ns = vmm_now_ns();
	}
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (event == VIR_DOMAIN_EVENT_STOPPED)
		wake_daemon(s);
	return 0;
}

static int on_balloon(virConnectPtr conn, virDomainPtr dom, unsigned long long actual_kib,
		      void *opaque)
{
	struct ebbd_libvirt *s = opaque;

	(void)conn;
	(void)dom;
	(void)actual_kib;   /* re-read with everything else by the poll it kicks */
	pthread_mutex_lock(&s->lock);
	s->c.nr_events++;
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
		       void *opaque)
{
	struct ebbd_libvirt *s = opaque;
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct lv_dom *x;

	(void)conn;
	(void)type;
	(void)nsuri;
	pthread_mutex_lock(&s->lock);
	s->c.nr_events++;
	if (!virDomainGetUUIDString(dom, uuid) && (x = dom_find(s, uuid)))
		x->meta_dirty = true;
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct ebbd_libvirt *s = opaque;

	(void)conn;
	(void)reason;
	pthread_mutex_lock(&s->lock);
	s->conn_closed = true;
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* ---- the worker ------------------------------------------------------------- */

static void disconnect(struct ebbd_libvirt *s)
{
	if (!s->conn)
		return;
	if (s->cb_lifecycle >= 0)
		virConnectDomainEventDeregisterAny(s->conn, s->cb_lifecycle);
	if (s->cb_balloon >= 0)
		virConnectDomainEventDeregisterAny(s->conn, s->cb_balloon);
	if (s->cb_metadata >= 0)
		virConnectDomainEventDeregisterAny(s->conn, s->cb_metadata);
	virConnectUnregisterCloseCallback(s->conn, on_close);
	virConnectClose(s->conn);
	s->conn = NULL;
	s->cb_lifecycle = s->cb_balloon = s->cb_metadata = -1;
}

static void try_connect(struct ebbd_libvirt *s, uint64_t now)
{
	if (now < s->next_connect_ns)
		return;
	s->conn = virConnectOpen(s->uri);
	if (!s->conn) {
		pthread_mutex_lock(&s->lock);
		s->c.nr_connect_errors++;
		pthread_mutex_unlock(&s->lock);
		vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN,
			    "libvirt %s: cannot connect (%s); trying again in %u ms", s->uri,
			    lv_err(), s->reconnect_ms);
		s->next_connect_ns = now + (uint64_t)s->reconnect_ms * 1000000ull;
		s->reconnect_ms = s->reconnect_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS :
			s->reconnect_ms * 2;
		return;
	}
	s->reconnect_ms = RECONNECT_MIN_MS;
	(void)virConnectSetKeepAlive(s->conn, 5, 3);
	(void)virConnectRegisterCloseCallback(s->conn, on_close, s, NULL);
	s->cb_lifecycle = virConnectDomainEventRegisterAny(
		s->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
		s, NULL);
	s->cb_balloon = virConnectDomainEventRegisterAny(
		s->conn, NULL, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(on_balloon), s, NULL);
	s->cb_metadata = virConnectDomainEventRegisterAny(
		s->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(on_metadata), s, NULL);
	if (s->cb_lifecycle < 0 || s->cb_balloon < 0)
		vmm_logf(&s->cfg.log, EBB_LOG_WARN, "libvirt %s: no domain events (%s): "
			 "stops are noticed at the next poll", s->uri, lv_err());
	pthread_mutex_lock(&s->lock);
	s->c.nr_connects++;
	s->conn_closed = false;
	pthread_mutex_unlock(&s->lock);
	vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt %s: connected", s->uri);
}

static uint64_t param_u64(virTypedParameterPtr p, int n, const char *name, bool *have)
{
	unsigned long long v = 0;

	*have = virTypedParamsGetULLong(p, n, name, &v) == 1;
	return *have ? v : 0;
}

/* GUEST (validated in lv_stats.c): one domain's record into x (lock held).
 * Returns the number of impossible values found (clamped or refused). */
static unsigned parse_record(struct ebbd_libvirt *s, struct lv_dom *x, virDomainStatsRecordPtr r,
			     uint64_t now)
{
	uint64_t prev_cur = x->st.cur_kib, cur;
	bool refused;
	unsigned bad = ebbd_lv_stats_parse(&x->st, r->params, r->nparams, now, &refused);

	if (refused)
		return bad;
	cur = x->st.cur_kib;
	/* The balloon got where it was sent, or stopped short of it (a guest
	 * with nothing left to give): the move's time is a figure. */
	if (x->set_ns) {
		bool there = (cur > x->target_kib ? cur - x->target_kib : x->target_kib - cur) <=
			     BALLOON_NEAR_KIB;

		if (cur != prev_cur)
			x->last_move_ns = now;
		if (there || (cur == prev_cur && now - x->last_move_ns > 2000000000ull)) {
			uint64_t ms = (x->last_move_ns - x->set_ns) / 1000000;
			uint64_t moved = cur > x->move_from_kib ? cur - x->move_from_kib :
				x->move_from_kib - cur;

			if (there)
				ms = (now - x->set_ns) / 1000000;
			s->c.balloon_move_last_ms = ms;
			x->set_ns = 0;
			vmm_logf(&s->cfg.log, EBB_LOG_INFO, "%s: balloon moved %" PRIu64 " MiB (guest "
				 "%" PRIu64 " -> %" PRIu64 " MiB, target %" PRIu64 " MiB%s) in %" PRIu64
				 " ms", x->name, moved / 1024, x->move_from_kib / 1024, cur / 1024,
				 x->target_kib / 1024, there ? "" : ", stopped short", ms);
		}
	}
	return bad;
}

/*
 * The QEMU process of a domain: the local process whose command line has
 * "-uuid UUID".  0 when there is none (a remote URI, or not ours to read).
 */
static int qemu_pid_of(const char *uuid)
{
	DIR *dir = opendir("/proc");
	struct dirent *e;
	char path[64], buf[8192];
	int pid = 0;

	if (!dir)
		return 0;
	while (!pid && (e = readdir(dir))) {
		ssize_t n, i;
		int fd;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%.16s/cmdline", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		for (i = 0; i + 6 < n; i += (ssize_t)strlen(buf + i) + 1) {
			if (strcmp(buf + i, "-uuid") == 0 &&
			    strcmp(buf + i + 6, uuid) == 0) {
				pid = (int)strtol(e->d_name, NULL, 10);
				break;
			}
		}
	}
	closedir(dir);
	return pid;
}

/*
 * The Rss of the guest RAM: the mapping of exactly the guest's size in
 * /proc/PID/smaps (QEMU maps a pc guest's RAM as one block).  QEMU's whole
 * RSS (balloon.rss) also holds its own memory — under TCG a translation
 * buffer of up to hundreds of MiB — which no balloon can move.  0 and
 * *found = false when there is no such mapping.  *mergeable: its VmFlags
 * has "mg" (MADV_MERGEABLE: QEMU's mem-merge, on unless the domain has
 * <memoryBacking><nosharepages/>).
 */
static uint64_t guest_ram_rss_kib(int pid, uint64_t size_kib, bool *found, uint64_t *start,
				  bool *mergeable)
{
	char path[64], line[256];
	uint64_t rss = 0, at = 0;
	bool in_ram = false, flags_next = false;
	FILE *f;

	*found = false;
	*mergeable = false;
	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
			at = strtoull(line, NULL, 16);   /* a mapping's header: start-end ... */
		} else if (strncmp(line, "Size:", 5) == 0) {
			in_ram = !*found && strtoull(line + 5, NULL, 10) == size_kib;
		} else if (in_ram && strncmp(line, "Rss:", 4) == 0) {
			rss = strtoull(line + 4, NULL, 10);
			*found = true;
			*start = at;
			in_ram = false;
			flags_next = true;
		} else if (flags_next && strncmp(line, "VmFlags:", 8) == 0) {
			*mergeable = strstr(line + 8, " mg") != NULL;
			flags_next = false;
		}
	}
	fclose(f);
	return rss;
}

/* The start of /proc/PID/FILE, NUL-terminated: false if unreadable or empty. */
static bool read_proc(int pid, const char *file, char *buf, size_t len)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

/* Major faults of a process (/proc/PID/stat field 12); 0 if unreadable. */
static uint64_t proc_majflt(int pid)
{
	char buf[1024], *p;
	int i;

	if (!read_proc(pid, "stat", buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');      /* the command name may hold spaces */
	for (i = 0; p && i < 10; i++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/*
 * KSM pages merged in a process (/proc/PID/ksm_merging_pages, Linux 5.19+;
 * *have = false where the file is not there or unreadable).
 */
static uint64_t proc_ksm_merging(int pid, bool *have)
{
	char buf[32], *end;
	unsigned long long v;

	*have = false;
	if (!read_proc(pid, "ksm_merging_pages", buf, sizeof(buf)))
		return 0;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		return 0;
	*have = true;
	return v;
}

/*
 * Host-side reclaim: MADV_PAGEOUT on want_kib worth of the guest RAM
 * mapping, in 2 MiB ranges from the cursor on (wrapping).  MADV_PAGEOUT
 * reclaims every page of a range whatever its age, so the cursor walks the
 * whole RAM round by round rather than hitting the same pages.  The ranges
 * cover want_kib scaled up by size/resident (only the resident part of a
 * range frees anything).  Returns bytes advised or -errno.
 */
static long pageout(int pid, uint64_t start, uint64_t size_kib, uint64_t rss_kib,
		    uint64_t want_kib, uint64_t *cursor)
{
	const uint64_t chunk = 2ull << 20, size = size_kib * KIB;
	struct iovec iov[64];
	uint64_t span = rss_kib ? want_kib * size_kib / rss_kib * KIB : size;
	long done = 0;
	int pidfd, n = 0;

	span = (span + 4095) & ~4095ull;   /* whole pages: each range starts page aligned */
	if (span > size)
		span = size;
	*cursor &= ~4095ull;
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return -errno;
	while (span > 0) {
		uint64_t off = *cursor % size, len = chunk;
		long ret;

		if (len > size - off)
			len = size - off;
		if (len > span)
			len = span;
		iov[n].iov_base = (void *)(uintptr_t)(start + off);
		iov[n].iov_len = len;
		n++;
		*cursor = (off + len) % size;
		span -= len;
		if (n == 64 || span == 0) {
			ret = syscall(SYS_process_madvise, pidfd, iov, n, MADV_PAGEOUT, 0);
			if (ret < 0) {
				done = done ? done : -errno;
				break;
			}
			done += ret;
			n = 0;
		}
	}
	close(pidfd);
	return done;
}

/*
 * The host side of the ebb agent channel in a domain's XML: the unix socket
 * of a <channel type='unix'> whose target is AGENT_CHANNEL, as
 *   <source mode='bind' path='/x/y.agent'/>
 * (QEMU listens, ebbd connects).  The path must be absolute, fit a unix
 * socket address and hold no XML escape; else path stays "" (the channel
 * exists but ebbd cannot use it: a pty, or QEMU connecting out).
 */
static void agent_channel_path(const char *xml, char *path, size_t path_len)
{
	const char *ch = xml;

	path[0] = '\0';
	while ((ch = strstr(ch, "<channel "))) {
		const char *end = strstr(ch, "</channel>"), *src, *p, *q;
		char quote;

		if (!end)
			return;
		src = strstr(ch, "<source ");
		if (!strstr(ch, "type='unix'") || strstr(ch, "type='unix'") > end ||
		    !strstr(ch, "name='" AGENT_CHANNEL "'") ||
		    strstr(ch, "name='" AGENT_CHANNEL "'") > end || !src || src > end ||
		    !strstr(src, "mode='bind'") || strstr(src, "mode='bind'") > end ||
		    !(p = strstr(src, "path=")) || p > end) {
			ch = end;
			continue;
		}
		p += strlen("path=");
		quote = *p++;
		q = (quote == '\'' || quote == '"') ? strchr(p, quote) : NULL;
		if (q && q < end && *p == '/' && (size_t)(q - p) < path_len &&
		    !memchr(p, '&', (size_t)(q - p))) {
			memcpy(path, p, (size_t)(q - p));
			path[q - p] = '\0';
		}
		return;
	}
}

/*
 * XML (worker, no lock): a balloon?  its stats period on?  the ebb agent
 * channel, and its socket?  (The guest driver reports its numbers once at
 * start even with the period off, so their presence does not say the period
 * is on.)
 */
static void probe_xml(virDomainPtr dom, bool *balloon, bool *period_on, bool *agent,
		      char *agent_path, size_t agent_path_len)
{
	char *xml = virDomainGetXMLDesc(dom, 0);
	const char *p;

	*balloon = true;
	*period_on = false;
	*agent = false;
	agent_path[0] = '\0';
	if (!xml)
		return;
	*balloon = !strstr(xml, "<memballoon model='none'") && !strstr(xml, "<memballoon model=\"none\"");
	p = strstr(xml, "<stats period=");
	*period_on = p && strtol(p + strlen("<stats period=") + 1, NULL, 10) > 0;
	*agent = strstr(xml, AGENT_CHANNEL) != NULL;
	if (*agent)
		agent_channel_path(xml, agent_path, agent_path_len);
	free(xml);
}

/* memtune, read only.  0 or -errno (worker, no lock). */
static int read_memtune(virDomainPtr dom, uint64_t *min_kib, uint64_t *soft_kib, uint64_t *hard_kib)
{
	virTypedParameterPtr p;
	int n = 0;
	bool h;

	*min_kib = *soft_kib = *hard_kib = 0;
	if (virDomainGetMemoryParameters(dom, NULL, &n, 0) < 0 || n <= 0 || n > 64)
		return -EIO;
	p = calloc((size_t)n, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (virDomainGetMemoryParameters(dom, p, &n, 0) < 0) {
		free(p);
		return -EIO;
	}
#define LIMITED(v) ((v) < VIR_DOMAIN_MEMORY_PARAM_UNLIMITED ? (v) : 0)
	*min_kib = LIMITED(param_u64(p, n, VIR_DOMAIN_MEMORY_MIN_GUARANTEE, &h));
	*soft_kib = LIMITED(param_u64(p, n, VIR_DOMAIN_MEMORY_SOFT_LIMIT, &h));
	*hard_kib = LIMITED(param_u64(p, n, VIR_DOMAIN_MEMORY_HARD_LIMIT, &h));
#undef LIMITED
	virTypedParamsClear(p, n);
	free(p);
	return 0;
}

/* Per-domain work that needs a libvirt call: probe, memtune, stats period. */
static void domain_chores(struct ebbd_libvirt *s, virDomainPtr dom, const char *uuid)
{
	struct lv_dom *x;
	bool probe, memtune, period = false, period_on = false, balloon = true, agent = false;
	bool ram_found = false, meta, changed = false;
	char agent_path[108] = "";
	uint64_t max_kib, rss = 0, ram_start = 0, majflt = 0, ksm = 0;
	bool mergeable = false, have_ksm = false;
	struct ebbd_lv_meta m = { 0 };
	unsigned nr_bad_meta = 0;
	int pid, cg_pid, cg_ret = 0;
	bool cg_decide = false;
	char cg_dir[EBBD_LV_CG_PATH_MAX] = "";
	uint64_t mn = 0, soft = 0, hard = 0;
	int ret = -1;

	pthread_mutex_lock(&s->lock);
	x = dom_find(s, uuid);
	if (!x) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	probe = !x->probed;
	memtune = x->memtune_age++ % MEMTUNE_EVERY_POLLS == 0;
	meta = memtune || x->meta_dirty;
	x->meta_dirty = false;
	pid = x->qemu_pid;
	cg_pid = x->cg_pid;
	max_kib = x->st.max_kib;
	pthread_mutex_unlock(&s->lock);
	if (probe || (pid && kill(pid, 0) < 0))
		pid = qemu_pid_of(uuid);
	if (pid) {
		rss = guest_ram_rss_kib(pid, max_kib, &ram_found, &ram_start, &mergeable);
		majflt = proc_majflt(pid);
		ksm = proc_ksm_merging(pid, &have_ksm);
	}
	/* the reclaim mechanism, once per QEMU process: a new pid (QEMU
	 * restarted, or found only now) may sit in another cgroup */
	if (pid && pid != cg_pid) {
		cg_ret = ebbd_lv_cgroup_find("/proc", pid, cg_dir, sizeof(cg_dir));
		cg_decide = true;
	}
	if (probe) {
		probe_xml(dom, &balloon, &period_on, &agent, agent_path, sizeof(agent_path));
		period = balloon && !period_on && s->cfg.stats_period_s > 0;
	}
	if (memtune)
		ret = read_memtune(dom, &mn, &soft, &hard);
	if (meta) {
		char *xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
						 EBBD_LIBVIRT_NS_URI, VIR_DOMAIN_AFFECT_LIVE);

		nr_bad_meta = ebbd_lv_parse_metadata(xml, &m);
		free(xml);
	}
	if (period) {
		if (virDomainSetMemoryStatsPeriod(dom, s->cfg.stats_period_s,
						  VIR_DOMAIN_AFFECT_LIVE) < 0)
			vmm_logf(&s->cfg.log, EBB_LOG_INFO, "%s: cannot set the balloon stats "
				 "period (%s): no guest numbers, the balloon stays put", 
				 virDomainGetName(dom), lv_err());
		else
			vmm_logf(&s->cfg.log, EBB_LOG_INFO, "%s: balloon stats period was off: "
				 "set to %d s (live only)", virDomainGetName(dom),
				 s->cfg.stats_period_s);
	}
	pthread_mutex_lock(&s->lock);
	x = dom_find(s, uuid);
	if (x) {
		if (period)
			s->c.nr_period_sets++;
		if (probe) {
			x->probed = true;
			x->has_balloon = balloon;
			x->has_agent_channel = agent;
			snprintf(x->agent_path, sizeof(x->agent_path), "%s", agent_path);
		}
		x->qemu_pid = pid;
		if (cg_decide) {
			x->cg_pid = pid;
			x->cg_use = !cg_ret;
			snprintf(x->cg_dir, sizeof(x->cg_dir), "%s", cg_ret ? "" : cg_dir);
		}
		x->ram_found = ram_found;
		x->ram_rss_kib = rss;
		x->ram_start = ram_start;
		x->qemu_majflt = majflt;
		x->ram_mergeable = mergeable;
		/* GUEST-driven (what the guest's pages let ksmd merge), but the
		 * kernel's count: a count above the guest's pages is clamped */
		if (have_ksm && ksm > x->st.max_kib / 4) {
			ksm = x->st.max_kib / 4;
			s->c.nr_bad_stats++;
		}
		x->ksm_merging_pages = have_ksm ? ksm : 0;
		if (meta) {
			s->c.nr_bad_metadata += nr_bad_meta;
			if (x->opt_out != m.opt_out)
				changed = true;
			x->opt_out = m.opt_out;
			x->meta_weight = m.weight;
			x->meta_min_kib = m.min_mib * 1024;
			x->meta_low_kib = m.low_mib * 1024;
		}
		if (memtune && !ret) {
			x->min_guarantee_kib = mn;
			x->soft_kib = soft;
			x->hard_kib = hard;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (cg_decide && !cg_ret)
		vmm_logf(&s->cfg.log, EBB_LOG_INFO, "%s: host-side reclaim by cgroup v2 "
			 "memory.reclaim in %s (QEMU pid %d)", virDomainGetName(dom), cg_dir, pid);
	else if (cg_decide)
		vmm_logf(&s->cfg.log, EBB_LOG_INFO, "%s: host-side reclaim by process_madvise"
			 "(MADV_PAGEOUT) on the guest RAM (QEMU pid %d; memory.reclaim: %s)",
			 virDomainGetName(dom), pid, ebbd_lv_cgroup_why(cg_ret));
	if (nr_bad_meta)
		vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN, "%s: %u bad values in its ebb "
			    "metadata (" EBBD_LIBVIRT_NS_URI ") ignored", virDomainGetName(dom),
			    nr_bad_meta);
	if (changed)
		wake_daemon(s);
}

static void stats_call_put(struct stats_call *c)
{
	bool last;

	pthread_mutex_lock(&c->lock);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (!last)
		return;
	if (c->recs)
		virDomainStatsRecordListFree(c->recs);
	virConnectClose(c->conn);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void *stats_thread(void *arg)
{
	struct stats_call *c = arg;
	virDomainStatsRecordPtr *recs = NULL;
	int n = virConnectGetAllDomainStats(c->conn, VIR_DOMAIN_STATS_STATE |
					    VIR_DOMAIN_STATS_BALLOON, &recs,
					    VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);

	pthread_mutex_lock(&c->lock);
	c->n = n;
	c->recs = n >= 0 ? recs : NULL;
	if (n < 0)
		snprintf(c->err, sizeof(c->err), "%s", lv_err());
	c->done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	stats_call_put(c);
	return NULL;
}

/*
 * The bulk stats: the records (n) or -1 with the reason in err.  The call
 * runs on its own thread and is waited for up to STATS_WAIT_MIN_MS (or two
 * poll periods); one not back by then is left to finish alone (one log
 * line) and, until it does, the polls ask with NOWAIT from the worker:
 * libvirt then skips the monitor of the domain whose job the stuck call
 * holds, and answers for the others.
 */
static int stats_call(struct ebbd_libvirt *s, virDomainStatsRecordPtr **recs, char *err,
		      size_t err_len)
{
	uint32_t wait_ms = s->cfg.poll_ms * 2 > STATS_WAIT_MIN_MS ? s->cfg.poll_ms * 2 :
		STATS_WAIT_MIN_MS;
	struct stats_call *c;
	struct timespec ts;
	pthread_t th;
	int n = -1;

	*recs = NULL;
	if (s->stuck) {
		bool done;

		pthread_mutex_lock(&s->stuck->lock);
		done = s->stuck->done;
		pthread_mutex_unlock(&s->stuck->lock);
		if (!done) {
			n = virConnectGetAllDomainStats(s->conn, VIR_DOMAIN_STATS_STATE |
							VIR_DOMAIN_STATS_BALLOON, recs,
							VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |
							VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
			if (n < 0)
				snprintf(err, err_len, "%s", lv_err());
			return n;
		}
		vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt %s: the stuck stats call returned "
			 "after %.1f s", s->uri, (double)(vmm_now_ns() - s->stuck->t0) / 1e9);
		stats_call_put(s->stuck);
		s->stuck = NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->refs = 2;
	c->conn = s->conn;
	virConnectRef(c->conn);
	c->t0 = vmm_now_ns();
	if (pthread_create(&th, NULL, stats_thread, c)) {
		c->refs = 1;
		stats_call_put(c);
		snprintf(err, err_len, "cannot start a thread for the stats call");
		return -1;
	}
	pthread_detach(th);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(wait_ms / 1000);
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (!c->done)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts))
			break;
	if (c->done) {
		n = c->n;
		*recs = c->recs;
		c->recs = NULL;
		snprintf(err, err_len, "%s", c->err);
	}
	pthread_mutex_unlock(&c->lock);
	if (n >= 0 || c->done) {
		stats_call_put(c);
		return n;
	}
	s->stuck = c;
	pthread_mutex_lock(&s->lock);
	s->c.nr_stuck_polls++;
	pthread_mutex_unlock(&s->lock);
	vmm_logf(&s->cfg.log, EBB_LOG_WARN, "libvirt %s: the stats call has not returned after "
		 "%u ms (a domain's QEMU not answering its monitor?): polling the others "
		 "without waiting for it; balloon moves wait", s->uri, wait_ms);
	n = virConnectGetAllDomainStats(s->conn, VIR_DOMAIN_STATS_STATE | VIR_DOMAIN_STATS_BALLOON,
					recs, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE |
					VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
	if (n < 0)
		snprintf(err, err_len, "%s", lv_err());
	return n;
}

static void poll_stats(struct ebbd_libvirt *s)
{
	virDomainStatsRecordPtr *recs = NULL;
	uint64_t t0 = vmm_now_ns(), t1;
	unsigned bad = 0;
	bool changed = false, swap;
	char err[200] = "";
	int n, i;
	size_t j;

	n = stats_call(s, &recs, err, sizeof(err));
	t1 = vmm_now_ns();
	if (n < 0) {
		pthread_mutex_lock(&s->lock);
		s->c.nr_poll_errors++;
		pthread_mutex_unlock(&s->lock);
		vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN, "libvirt %s: stats: %s", s->uri,
			    err);
		return;
	}
	swap = ebbd_lv_host_has_swap();
	pthread_mutex_lock(&s->lock);
	s->have_swap = swap;
	s->c.nr_polls++;
	s->c.poll_last_ns = t1 - t0;
	if (t1 - t0 > s->c.poll_max_ns)
		s->c.poll_max_ns = t1 - t0;
	for (j = 0; j < s->nr_doms; j++)
		s->doms[j].was_running = s->doms[j].running;
	for (j = 0; j < s->nr_doms; j++)
		s->doms[j].running = false;
	for (i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];
		const char *name = virDomainGetName(recs[i]->dom);
		struct lv_dom *x;

		if (virDomainGetUUIDString(recs[i]->dom, uuid) < 0 || !name)
			continue;   /* vanished while we asked */
		x = dom_find(s, uuid);
		if (!x) {
			struct lv_dom *nd;

			if (s->nr_doms >= MAX_DOMAINS || strlen(name) >= EBB_BAL_NAME_MAX) {
				bad++;
				continue;
			}
			nd = realloc(s->doms, (s->nr_doms + 1) * sizeof(*nd));
			if (!nd)
				continue;
			s->doms = nd;
			x = &s->doms[s->nr_doms++];
			memset(x, 0, sizeof(*x));
			snprintf(x->uuid, sizeof(x->uuid), "%s", uuid);
			snprintf(x->name, sizeof(x->name), "%s", name);
		}
		bad += parse_record(s, x, recs[i], t1);
		/* a stop that came while this answer was on its way wins */
		if (x->stop_ns >= t0)
			continue;
		x->stop_ns = 0;
		x->running = true;
	}
	for (j = 0; j < s->nr_doms; j++)
		if (s->doms[j].running != s->doms[j].was_running ||
		    (s->doms[j].running && s->doms[j].join_refused))
			changed = true;   /* (a refused one: the daemon may have reloaded) */
	/* forget domains gone and no longer in the daemon */
	for (j = 0; j < s->nr_doms;) {
		if (!s->doms[j].running && !s->doms[j].attached)
			s->doms[j] = s->doms[--s->nr_doms];
		else
			j++;
	}
	s->c.nr_bad_stats += bad;
	pthread_mutex_unlock(&s->lock);
	if (bad)
		vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN, "libvirt %s: %u impossible values "
			    "in the domain stats (clamped or ignored)", s->uri, bad);
	for (i = 0; i < n; i++) {
		char uuid[VIR_UUID_STRING_BUFLEN];

		if (!virDomainGetUUIDString(recs[i]->dom, uuid))
			domain_chores(s, recs[i]->dom, uuid);
	}
	virDomainStatsRecordListFree(recs);
	if (changed)
		wake_daemon(s);
}

/* Balloon targets queued by apply().  While a stats call is stuck they
 * wait: the stuck domain's state-change lock is held, and setting its
 * balloon would stall the worker until libvirt's job timeout. */
static void set_balloons(struct ebbd_libvirt *s)
{
	while (!s->stuck) {
		char uuid[VIR_UUID_STRING_BUFLEN] = "", name[EBB_BAL_NAME_MAX] = "";
		uint64_t kib = 0;
		virDomainPtr dom;
		size_t j;
		int ret;

		pthread_mutex_lock(&s->lock);
		for (j = 0; j < s->nr_doms; j++) {
			if (s->doms[j].want_kib && s->doms[j].running) {
				kib = s->doms[j].want_kib;
				s->doms[j].want_kib = 0;
				snprintf(uuid, sizeof(uuid), "%s", s->doms[j].uuid);
				snprintf(name, sizeof(name), "%s", s->doms[j].name);
				break;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (!kib)
			return;
		dom = virDomainLookupByUUIDString(s->conn, uuid);
		ret = dom ? virDomainSetMemoryFlags(dom, kib, VIR_DOMAIN_AFFECT_LIVE) : -1;
		if (ret < 0)
			vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN, "%s: balloon to %" PRIu64
				    " MiB: %s", name, kib / 1024, lv_err());
		if (dom)
			virDomainFree(dom);
		pthread_mutex_lock(&s->lock);
		if (ret < 0) {
			s->c.nr_balloon_set_errors++;
		} else {
			struct lv_dom *x = dom_find(s, uuid);

			s->c.nr_balloon_sets++;
			if (x) {
				x->target_kib = kib;
				if (!x->set_ns && kib != x->st.cur_kib) {
					x->set_ns = x->last_move_ns = vmm_now_ns();
					x->move_from_kib = x->st.cur_kib;
				}
			}
		}
		pthread_mutex_unlock(&s->lock);
	}
}

/*
 * The balancer's high on a domain, kept by reclaiming what is above it
 * each round (the kernel brings pages back on the next touch: QEMU's major
 * faults are the refaults the balancer watches): through the memory.reclaim
 * of QEMU's own cgroup where the domain has one (the kernel picks the
 * coldest pages of its LRU), else MADV_PAGEOUT on ranges of the guest RAM.
 * A memory.reclaim write that fails (other than "reclaimed less": EAGAIN)
 * drops the domain to MADV_PAGEOUT for the rest of this QEMU's life.
 */
static void do_pageouts(struct ebbd_libvirt *s)
{
	size_t j;

	for (j = 0;; j++) {
		char name[EBB_BAL_NAME_MAX], cg_dir[EBBD_LV_CG_PATH_MAX];
		uint64_t start, size_kib, rss_kib, want, cursor;
		struct lv_dom *x;
		bool cg;
		int pid;
		long ret;

		pthread_mutex_lock(&s->lock);
		if (j >= s->nr_doms) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		x = &s->doms[j];
		if (x->high_kib && x->ram_found && x->ram_rss_kib > x->high_kib + 4096 &&
		    !x->pageout_kib)
			x->pageout_kib = x->ram_rss_kib - x->high_kib;
		want = x->pageout_kib;
		x->pageout_kib = 0;
		pid = x->qemu_pid;
		start = x->ram_start;
		size_kib = x->st.max_kib;
		rss_kib = x->ram_rss_kib;
		cursor = x->pageout_cursor;
		cg = x->cg_use && x->cg_pid == pid;
		snprintf(cg_dir, sizeof(cg_dir), "%s", cg ? x->cg_dir : "");
		snprintf(name, sizeof(name), "%s", x->name);
		pthread_mutex_unlock(&s->lock);
		if (!want || !pid || !s->have_swap)
			continue;
		if (cg)
			ret = ebbd_lv_cgroup_reclaim(cg_dir, want * KIB);
		else
			ret = pageout(pid, start, size_kib, rss_kib, want, &cursor);
		pthread_mutex_lock(&s->lock);
		if (cg && ret == -EAGAIN) {
			s->c.nr_pageouts++;
			s->c.nr_cg_reclaims++;
			s->c.nr_cg_reclaim_short++;
			s->c.cg_reclaim_asked_bytes += want * KIB;
		} else if (ret < 0) {
			s->c.nr_pageout_errors++;
		} else if (cg) {
			s->c.nr_pageouts++;
			s->c.nr_cg_reclaims++;
			s->c.cg_reclaim_asked_bytes += want * KIB;
		} else {
			s->c.nr_pageouts++;
			s->c.pageout_advised_bytes += (uint64_t)ret;
		}
		if (j < s->nr_doms && strcmp(s->doms[j].name, name) == 0) {
			s->doms[j].pageout_cursor = cursor;
			if (cg && ret < 0 && ret != -EAGAIN && s->doms[j].cg_pid == pid)
				s->doms[j].cg_use = false;
		}
		pthread_mutex_unlock(&s->lock);
		if (cg && ret < 0 && ret != -EAGAIN)
			vmm_logf(&s->cfg.log, EBB_LOG_WARN, "%s: host-side reclaim (memory.reclaim "
				 "in %s, QEMU pid %d): %s; process_madvise(MADV_PAGEOUT) from now on",
				 name, cg_dir, pid, strerror((int)-ret));
		else if (ret < 0 && !cg)
			vmm_logf_rl(&s->cfg.log, &s->rl, EBB_LOG_WARN, "%s: host-side reclaim "
				    "(process_madvise MADV_PAGEOUT, QEMU pid %d): %s", name, pid,
				    strerror((int)-ret));
	}
}

static void *worker(void *arg)
{
	struct ebbd_libvirt *s = arg;
	struct timespec ts;
	bool stop, closed;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		stop = s->stop;
		closed = s->conn_closed;
		s->kick = false;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			break;
		if (s->conn && (closed || virConnectIsAlive(s->conn) != 1)) {
			vmm_logf(&s->cfg.log, EBB_LOG_WARN, "libvirt %s: connection lost; "
				 "reconnecting (its domains keep their last numbers meanwhile)", s->uri);
			disconnect(s);
		}
		if (!s->conn)
			try_connect(s, vmm_now_ns());
		if (s->conn) {
			set_balloons(s);
			poll_stats(s);
			do_pageouts(s);
		}
		pthread_mutex_lock(&s->lock);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(s->cfg.poll_ms % 1000) * 1000000L;
		ts.tv_sec += (time_t)(s->cfg.poll_ms / 1000) + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		while (!s->stop && !s->kick)
			if (pthread_cond_timedwait(&s->cond, &s->lock, &ts))
				break;
		pthread_mutex_unlock(&s->lock);
	}
	if (s->stuck) {
		stats_call_put(s->stuck);   /* its thread frees it when the call returns */
		s->stuck = NULL;
	}
	disconnect(s);
	return NULL;
}

/*
 * What a guest can give its balloon without running short, from the balloon
 * driver's numbers: the ebb agent's rule (guest-agent/agent_stats.c) —
 * free memory above max(32 MiB, 1/32 of the guest) and reclaimable memory
 * beyond free above max(32 MiB, 1/16).  All of what the guest calls
 * available would leave it none, and the balancer gives a guest with less
 * than 1/20 left its balloon back: the two would chase each other.
 */
static uint64_t guest_give_back_kib(uint64_t total_kib, uint64_t free_kib, uint64_t avail_kib)
{
	uint64_t total = total_kib * KIB;

	return ebb_giveback_bytes(total, free_kib * KIB,
				  ebb_giveback_sub_sat(avail_kib, free_kib) * KIB,
				  ebb_giveback_free_reserve(total), ebb_giveback_cache_floor(total)) / KIB;
}

/* ---- the backend (the daemon's thread) --------------------------------------- */

static int lv_observe(struct ebbd_backend *be, struct ebb_bal_vm_obs *obs)
{
	struct backend_lv *b = (struct backend_lv *)be;
	struct ebbd_libvirt *s = b->src;
	uint64_t now = vmm_now_ns(), tgt;
	struct ebbd_lv_memtune mt;
	struct ebbd_lv_meta meta = { 0 };
	struct lv_dom *x;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	x = dom_find(s, b->uuid);
	if (!x || !x->running) {
		ret = -ENOENT;
		goto out;
	}
	if (now - x->st.poll_ns > (uint64_t)STALE_POLLS * s->cfg.poll_ms * 1000000ull) {
		s->c.nr_stale_observes++;
		ret = -ETIMEDOUT;
		goto out;
	}
	obs->backend = EBB_BAL_BACKEND_LIBVIRT;
	obs->caps = x->has_balloon ? EBB_BAL_CAP_BALLOON : 0;
	obs->guest_bytes = x->st.max_kib * KIB;
	obs->resident_bytes = (x->ram_found ? x->ram_rss_kib : x->st.rss_kib) * KIB;
	obs->cur_high_bytes = obs->cur_max_bytes = EBB_BAL_NO_LIMIT;   /* (high: below) */
	obs->balloon_actual_bytes = (x->st.max_kib - x->st.cur_kib) * KIB;
	tgt = x->want_kib ? x->want_kib : x->target_kib ? x->target_kib : x->st.cur_kib;
	obs->balloon_target_bytes = tgt <= x->st.max_kib ? (x->st.max_kib - tgt) * KIB : 0;
	obs->nr_swapins = x->st.swap_in_kib / 4;
	/* KSM: QEMU advises its guest RAM itself (mem-merge); ebbd cannot
	 * switch it from outside (no EBB_BAL_CAP_KSM), but the domain's merged
	 * pages count like an ebb VM's */
	obs->ksm_advised = x->ram_mergeable;
	obs->ksm_merging_pages = x->ksm_merging_pages;
	if (x->ram_found && x->qemu_pid && s->have_swap) {
		obs->caps |= EBB_BAL_CAP_HIGH;
		obs->cur_high_bytes = x->high_kib ? x->high_kib * KIB : EBB_BAL_NO_LIMIT;
		obs->nr_refaults = x->qemu_majflt;
		obs->high_via = x->cg_use && x->cg_pid == x->qemu_pid ? "memory.reclaim" :
			"process_madvise";
	}
	/* memtune as a floor (read, never set), then the domain's ebb
	 * metadata, else ebbd's configuration: lv_stats.h */
	mt.min_guarantee_kib = x->min_guarantee_kib;
	mt.soft_kib = x->soft_kib;
	mt.hard_kib = x->hard_kib;
	meta.weight = x->meta_weight;
	meta.min_mib = x->meta_min_kib / 1024;
	meta.low_mib = x->meta_low_kib / 1024;
	ebbd_lv_settings(&mt, &meta, &b->cfg, &obs->cfg);
	obs->cfg.high_bytes = EBB_BAL_NO_LIMIT;
	obs->cfg.swappiness = -1;
	/* The balloon driver's guest statistics stand in for an agent report:
	 * the balancer sizes a balloon from them (and ignores them once
	 * last-update stops moving). */
	if (x->st.have_guest && x->st.report_ns) {
		obs->agent_present = true;
		obs->agent_report_ns = x->st.report_ns;
		/* reclaimable cache: what the guest counts as available beyond free
		 * (disk_caches also counts tmpfs, which no balloon can free) */
		obs->agent_free_bytes = x->st.unused_kib * KIB;
		obs->agent_cache_bytes = x->st.usable_kib > x->st.unused_kib ?
			(x->st.usable_kib - x->st.unused_kib) * KIB : 0;
		obs->agent_give_back_bytes = guest_give_back_kib(x->st.cur_kib, x->st.unused_kib,
								 x->st.usable_kib) * KIB;
	}
out:
	pthread_mutex_unlock(&s->lock);
	/* The ebb agent on the domain's channel, when it answers: its report
	 * replaces the balloon driver's numbers (free, clean cache, what it can
	 * give back), its pressure messages wake the balancer (agent_poll). */
	if (!ret)
		ebbd_agent_link_observe(&b->agent, b->agent_path, obs);
	return ret;
}

static int lv_apply(struct ebbd_backend *be, const struct ebb_bal_action *a, uint64_t now_ns)
{
	struct backend_lv *b = (struct backend_lv *)be;
	struct ebbd_libvirt *s = b->src;
	struct lv_dom *x;
	uint64_t kib;
	int ret = 0;

	(void)now_ns;
	if (a->kind == EBB_BAL_ACT_AGENT_DROP_CACHE || a->kind == EBB_BAL_ACT_AGENT_RECLAIM)
		return ebbd_agent_link_reclaim(&b->agent, a);
	if (a->kind == EBB_BAL_ACT_SET_HIGH) {
		pthread_mutex_lock(&s->lock);
		x = dom_find(s, b->uuid);
		if (!x || !x->running) {
			ret = -ENOENT;
		} else if (!x->ram_found || !x->qemu_pid || !s->have_swap) {
			ret = -EOPNOTSUPP;
		} else if (a->value == EBB_BAL_NO_LIMIT || a->value / KIB >= x->st.max_kib) {
			x->high_kib = 0;
			x->pageout_kib = 0;
		} else {
			x->high_kib = a->value / KIB;
			x->pageout_kib = x->ram_rss_kib > x->high_kib ?
				x->ram_rss_kib - x->high_kib : 0;
		}
		pthread_mutex_unlock(&s->lock);
		if (!ret)
			kick_worker(s);
		return ret;
	}
	if (a->kind != EBB_BAL_ACT_BALLOON)
		return -EOPNOTSUPP;
	kib = a->value2 / KIB;
	pthread_mutex_lock(&s->lock);
	x = dom_find(s, b->uuid);
	if (!x || !x->running)
		ret = -ENOENT;
	else if (!x->has_balloon)
		ret = -EOPNOTSUPP;
	else if (!kib || kib > x->st.max_kib)
		ret = -EINVAL;
	else
		x->want_kib = kib;   /* the worker sets it; a newer target replaces it */
	pthread_mutex_unlock(&s->lock);
	if (!ret)
		kick_worker(s);
	return ret;
}

static int lv_renew(struct ebbd_backend *be, uint64_t now_ns)
{
	(void)be;
	(void)now_ns;
	return 0;
}

static void lv_release(struct ebbd_backend *be)
{
	(void)be;   /* no clamps: the balloon stays where it is, as on ebb VMs */
}

static void lv_destroy(struct ebbd_backend *be)
{
	struct backend_lv *b = (struct backend_lv *)be;
	struct lv_dom *x;

	if (!b)
		return;
	ebbd_agent_link_fini(&b->agent);
	pthread_mutex_lock(&b->src->lock);
	x = dom_find(b->src, b->uuid);
	if (x)
		x->attached = false;
	b->src->c.nr_left++;
	pthread_mutex_unlock(&b->src->lock);
	free(b);
}

static int lv_watch_open(struct ebbd_backend *be)
{
	(void)be;
	return -EOPNOTSUPP;   /* events come through the source's eventfd */
}

static int lv_watch_read(struct ebbd_backend *be)
{
	(void)be;
	return 0;
}

static int lv_agent_fd(struct ebbd_backend *be)
{
	return ebbd_agent_link_fd(&((struct backend_lv *)be)->agent);
}

static int lv_agent_poll(struct ebbd_backend *be)
{
	return ebbd_agent_link_poll(&((struct backend_lv *)be)->agent);
}

/* One of `set`'s sizes: absent (0), valid (1) or bad (-EINVAL). */
static int set_arg(struct json_object *args, const char *key, uint64_t hi, uint64_t *out)
{
	struct json_object *v;
	int64_t n;

	if (!json_object_object_get_ex(args, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	n = json_object_get_int64(v);
	if (n < 0 || (uint64_t)n > hi)
		return -EINVAL;
	*out = (uint64_t)n;
	return 1;
}

/*
 * `set` is how the daemon gives a VM ebbd's configuration ([vm] and
 * [vm NAME]: min_bytes, low_bytes, weight).  A domain keeps them here, on
 * the daemon's side, under its <ebb:memory> metadata (which wins) and over
 * its memtune (read as a floor); nothing is written to libvirt.  Other
 * commands: libvirt domains take their settings from libvirt.
 */
static int lv_call(struct ebbd_backend *be, const char *cmd, struct json_object *args,
		   struct json_object **result, char *err, size_t err_len)
{
	struct backend_lv *b = (struct backend_lv *)be;
	struct ebbd_vm_settings *c = &b->cfg;
	uint64_t mn = 0, lo = 0, w = 0;
	int has_min, has_low, has_w;

	(void)result;
	if (strcmp(cmd, "set") != 0 || !args || !json_object_is_type(args, json_type_object)) {
		snprintf(err, err_len, "%s: libvirt domains take their settings from libvirt "
			 "(memtune, <ebb:memory> metadata) and ebbd's configuration", cmd);
		return -EOPNOTSUPP;
	}
	has_min = set_arg(args, "min_bytes", EBBD_LV_META_MAX_MIB << 20, &mn);
	has_low = set_arg(args, "low_bytes", EBBD_LV_META_MAX_MIB << 20, &lo);
	has_w = set_arg(args, "weight", EBB_BAL_MAX_WEIGHT, &w);
	if (has_min < 0 || has_low < 0 || has_w < 0 || (has_w && !w)) {
		snprintf(err, err_len, "set: min_bytes, low_bytes (at most %llu MiB) and weight "
			 "(1..%u) must be whole numbers in range",
			 (unsigned long long)EBBD_LV_META_MAX_MIB, EBB_BAL_MAX_WEIGHT);
		return -EINVAL;
	}
	if (has_min) {
		c->has_min = true;
		c->min_bytes = mn;
	}
	if (has_low) {
		c->has_low = true;
		c->low_bytes = lo;
	}
	if (has_w) {
		c->has_weight = true;
		c->weight = (uint32_t)w;
	}
	return 0;
}

static const struct ebbd_backend_ops lv_ops = {
	.kind = "libvirt",
	.observe = lv_observe,
	.apply = lv_apply,
	.renew = lv_renew,
	.release = lv_release,
	.destroy = lv_destroy,
	.watch_open = lv_watch_open,
	.watch_read = lv_watch_read,
	.agent_fd = lv_agent_fd,
	.agent_poll = lv_agent_poll,
	.call = lv_call,
};

/* The daemon's thread: domains join and leave the pool. */
static void sync_daemon(void *opaque, uint32_t events)
{
	struct ebbd_libvirt *s = opaque;
	uint64_t n, gen = ebbd_config_generation(s->d);
	size_t j;

	(void)events;
	(void)!read(s->wake_fd, &n, sizeof(n));
	for (;;) {
		char name[EBB_BAL_NAME_MAX] = "", uuid[VIR_UUID_STRING_BUFLEN] = "";
		char agent_path[108] = "";
		bool join = false, leave = false, balloon = true, agent = false, ram = false;
		const char *why = "";
		uint64_t ram_kib = 0;
		int pid = 0;
		struct backend_lv *b;
		int ret;

		pthread_mutex_lock(&s->lock);
		for (j = 0; j < s->nr_doms && !join && !leave; j++) {
			struct lv_dom *x = &s->doms[j];

			/* one the daemon refused is tried again after a reload */
			join = x->running && !x->opt_out && !x->attached && x->st.poll_ns &&
			       x->probed && (!x->join_refused || x->refused_gen != gen);
			leave = (!x->running || x->opt_out) && x->attached;
			why = x->running ? "libvirt: opted out by its ebb metadata" :
					   "libvirt: domain stopped";
			if (join || leave) {
				snprintf(name, sizeof(name), "%s", x->name);
				snprintf(uuid, sizeof(uuid), "%s", x->uuid);
				balloon = x->has_balloon;
				agent = x->has_agent_channel;
				snprintf(agent_path, sizeof(agent_path), "%s", x->agent_path);
				ram = x->ram_found;
				ram_kib = x->ram_rss_kib;
				pid = x->qemu_pid;
				x->attached = join;
			}
		}
		if (join)
			s->c.nr_joined++;
		pthread_mutex_unlock(&s->lock);
		if (leave) {
			(void)ebbd_vm_detach(s->d, name, why);
			continue;
		}
		if (!join)
			return;
		b = calloc(1, sizeof(*b));
		if (!b)
			return;
		b->be.ops = &lv_ops;
		b->src = s;
		snprintf(b->uuid, sizeof(b->uuid), "%s", uuid);
		snprintf(b->name, sizeof(b->name), "%s", name);
		snprintf(b->agent_path, sizeof(b->agent_path), "%s", agent_path);
		ebbd_agent_link_init(&b->agent, b->name, &s->cfg.log);
		if (ram)
			vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt domain %s: QEMU pid %d, guest RAM "
				 "%" PRIu64 " MiB resident", name, pid, ram_kib / 1024);
		else
			vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt domain %s: QEMU's guest RAM mapping "
				 "not found%s: its whole RSS counts", name, pid ? "" : " (no local process)");
		vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt domain %s (%s): %s, %s%s%s", name, s->uri,
			 balloon ? "balloon" : "no balloon: host-side reclaim only",
			 agent ? "ebb agent channel " AGENT_CHANNEL : "no ebb agent channel",
			 !agent ? "" : agent_path[0] ? " at " : " (not a unix socket QEMU "
			 "listens on: not used)", agent_path);
		ret = ebbd_vm_attach(s->d, name, &b->be);   /* owns b from here */
		if (!ret)
			continue;
		vmm_logf(&s->cfg.log, ret == -EPERM ? EBB_LOG_INFO : EBB_LOG_WARN,
			 "libvirt domain %s not managed: %s", name, ret == -EEXIST ?
			 "a VM of that name is already in the pool" : ret == -EPERM ?
			 "opted out in ebbd's configuration" : strerror(-ret));
		pthread_mutex_lock(&s->lock);
		for (j = 0; j < s->nr_doms; j++) {
			if (strcmp(s->doms[j].uuid, uuid) == 0) {
				s->doms[j].join_refused = ret;
				s->doms[j].refused_gen = gen;
			}
		}
		pthread_mutex_unlock(&s->lock);
	}
}

/* ---- lifetime --------------------------------------------------------------------- */

int ebbd_libvirt_create(const struct ebbd_libvirt_cfg *cfg, struct ebbd *d,
			struct ebbd_libvirt **out)
{
	struct ebbd_libvirt *s;
	int ret;

	*out = NULL;
	if (!cfg->uri || strlen(cfg->uri) >= sizeof(s->uri))
		return -EINVAL;
	pthread_once(&lv_once, lv_init_once);
	if (lv_once_ret)
		return lv_once_ret;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	snprintf(s->uri, sizeof(s->uri), "%s", cfg->uri);
	s->cfg.uri = s->uri;
	if (!s->cfg.poll_ms)
		s->cfg.poll_ms = EBBD_LIBVIRT_DEFAULT_POLL_MS;
	if (!s->cfg.stats_period_s)
		s->cfg.stats_period_s = EBBD_LIBVIRT_DEFAULT_STATS_PERIOD_S;
	s->d = d;
	s->cb_lifecycle = s->cb_balloon = s->cb_metadata = -1;
	s->reconnect_ms = RECONNECT_MIN_MS;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = ebbd_add_fd(d, s->wake_fd, sync_daemon, s);
	if (ret)
		goto fail;
	ret = -pthread_create(&s->worker, NULL, worker, s);
	if (ret)
		goto fail;
	s->worker_started = true;
	*out = s;
	return 0;
fail:
	ebbd_libvirt_destroy(s);
	return ret;
}

void ebbd_libvirt_destroy(struct ebbd_libvirt *s)
{
	if (!s)
		return;
	if (s->worker_started) {
		pthread_mutex_lock(&s->lock);
		s->stop = true;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->worker, NULL);
	}
	if (s->c.nr_connects + s->c.nr_connect_errors)
		vmm_logf(&s->cfg.log, EBB_LOG_INFO, "libvirt %s: %" PRIu64 " connects (%" PRIu64
			 " failed), %" PRIu64 " stats polls (%" PRIu64 " failed; last %.1f ms, "
			 "max %.1f ms), %" PRIu64 " events, %" PRIu64 " domains joined, %" PRIu64
			 " left, %" PRIu64 " balloon moves (%" PRIu64 " failed; last reached in %"
			 PRIu64 " ms), %" PRIu64 " stats periods set, %" PRIu64 " bad values, %"
			 PRIu64 " stale observations, %" PRIu64 " stuck stats calls, %" PRIu64
			 " host-side reclaim rounds (%" PRIu64 " failed, %" PRIu64 " MiB advised; %"
			 PRIu64 " by memory.reclaim, %" PRIu64 " of them short, %" PRIu64
			 " MiB asked), %" PRIu64 " bad metadata values", s->uri, s->c.nr_connects,
			 s->c.nr_connect_errors, s->c.nr_polls, s->c.nr_poll_errors,
			 (double)s->c.poll_last_ns / 1e6, (double)s->c.poll_max_ns / 1e6,
			 s->c.nr_events, s->c.nr_joined, s->c.nr_left, s->c.nr_balloon_sets,
			 s->c.nr_balloon_set_errors, s->c.balloon_move_last_ms, s->c.nr_period_sets,
			 s->c.nr_bad_stats, s->c.nr_stale_observes, s->c.nr_stuck_polls,
			 s->c.nr_pageouts,
			 s->c.nr_pageout_errors, s->c.pageout_advised_bytes >> 20,
			 s->c.nr_cg_reclaims, s->c.nr_cg_reclaim_short,
			 s->c.cg_reclaim_asked_bytes >> 20,
			 s->c.nr_bad_metadata);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->doms);
	free(s);
}

void ebbd_libvirt_get_counters(struct ebbd_libvirt *s, struct ebbd_libvirt_counters *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->c;
	pthread_mutex_unlock(&s->lock);
}
