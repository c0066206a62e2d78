/*
 * ebb-agent - the in-guest agent (static binary; protocol: docs/agent-protocol.md).
 *
 * Finds the virtio-serial port named org.ebb.agent.0 through
 * /sys/class/virtio-ports/<port>/name (creating /dev/<port> from the sysfs
 * "dev" file when no devtmpfs made it), arms a PSI trigger on
 * /proc/pressure/memory, locks itself in memory, and runs one poll loop:
 * port input -> agent core -> port output; PSI POLLPRI -> pressure message;
 * timer -> periodic reports.  The logic lives in guest-agent/agent.c; this file
 * only owns file descriptors and the loop.
 *
 * Host side going away: a virtio-serial port whose host end is closed polls as
 * POLLHUP and reads 0.  The agent then ends the session and waits, retrying
 * every --retry-ms, WITHOUT closing the port (closing would discard bytes the
 * host may already have sent on reconnect); it reopens the port only when a
 * read or write fails (e.g. the port was unplugged) or, in --device socket
 * mode, when the socket peer closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/sock.h"
#include "guest-agent/agent.h"
#include "guest-agent/agent_port.h"

#define DEFAULT_PORT "org.ebb.agent.0"

struct opts {
	const char *port_name;
	const char *device;       /* explicit char device or unix socket path */
	const char *sysfs_root;
	const char *dev_dir;
	const char *cgroup_dir;
	uint32_t period_ms;
	uint32_t psi_stall_us;
	uint32_t psi_window_us;
	uint32_t retry_ms;
	bool no_mlock;
	bool no_oom_protect;
	int verbose;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	/* One write() per line: the console is shared with init and the kernel,
	 * and a line split over several writes gets other output spliced in. */
	char line[512];
	va_list ap;
	int n = snprintf(line, sizeof(line), "ebb-agent: ");

	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

static void core_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	const int *verbose = ctx;

	if (level == EBB_LOG_INFO && !*verbose)
		return;
	logmsg("%s", msg);
}

static int open_channel(const struct opts *o, bool *is_socket)
{
	char path[300];
	struct stat st;
	int fd, rc;

	*is_socket = false;
	if (o->device) {
		snprintf(path, sizeof(path), "%s", o->device);
	} else {
		rc = agent_port_find(o->sysfs_root, o->dev_dir, o->port_name, path, sizeof(path));
		if (rc)
			return rc;
	}
	if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		fd = ebb_sock_connect(path, SOCK_NONBLOCK);
		if (fd < 0)
			return fd;
		*is_socket = true;
		return fd;
	}
	fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	return fd < 0 ? -errno : fd;
}

static int arm_psi_once(uint32_t stall_us, uint32_t window_us)
{
	char trig[64];
	int fd = open("/proc/pressure/memory", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(trig, sizeof(trig), "some %u %u", stall_us, window_us);
	if (write(fd, trig, strlen(trig) + 1) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}

/* Arm "some stall window".  Without CAP_SYS_RESOURCE the kernel only takes
 * windows that are multiples of 2 s: on EINVAL, widen the window to the next
 * multiple (scaling the stall with it) and say what was armed. */
static int arm_psi(struct agent *a, uint32_t stall_us, uint32_t window_us)
{
	int fd = arm_psi_once(stall_us, window_us);

	if (fd == -EINVAL && window_us % 2000000) {
		uint32_t w2 = (window_us / 2000000 + 1) * 2000000;
		uint32_t s2 = (uint32_t)((uint64_t)stall_us * w2 / window_us);

		if (w2 <= 10000000) {
			fd = arm_psi_once(s2, w2);
			if (fd >= 0) {
				logmsg("PSI window widened to %u us (stall %u us): no CAP_SYS_RESOURCE",
				       w2, s2);
				stall_us = s2;
				window_us = w2;
			}
		}
	}
	if (fd >= 0)
		agent_psi_applied(a, stall_us, window_us);
	return fd;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ebb-agent [options]\n"
		"  --port NAME          virtio-serial port name (default " DEFAULT_PORT ")\n"
		"  --device PATH        use this char device or unix socket instead\n"
		"  --period-ms N        periodic report interval (default 0: off)\n"
		"  --psi-stall-us N     PSI trigger stall (default 100000)\n"
		"  --psi-window-us N    PSI trigger window (default 1000000)\n"
		"  --cgroup DIR         cgroup v2 dir for memory.reclaim (default /sys/fs/cgroup)\n"
		"  --retry-ms N         reconnect wait (default 200)\n"
		"  --sysfs-root DIR     (default /sys)   --dev-dir DIR (default /dev)\n"
		"  --no-mlock  --no-oom-protect  -v\n");
}

static uint32_t parse_u32(const char *s, const char *what)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || v > UINT32_MAX) {
		logmsg("bad %s: %s", what, s);
		exit(2);
	}
	return (uint32_t)v;
}

/* Mount cgroup2 where memory.reclaim can be found, if nobody did. */
static const char *setup_cgroup(const char *dir)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/memory.reclaim", dir);
	if (access(path, W_OK) == 0)
		return dir;
	/* The guest's init mounts no cgroup2: do it (fails harmlessly if the
	 * directory is missing or something else is mounted there). */
	if (mount("cgroup2", dir, "cgroup2", 0, NULL) != 0)
		logmsg("mount cgroup2 on %s: %s (no proactive reclaim)", dir, strerror(errno));
	return dir; /* the core re-checks per request and says "unsupported" */
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "device", required_argument, NULL, 'd' },
		{ "period-ms", required_argument, NULL, 'P' },
		{ "psi-stall-us", required_argument, NULL, 's' },
		{ "psi-window-us", required_argument, NULL, 'w' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "retry-ms", required_argument, NULL, 'r' },
		{ "sysfs-root", required_argument, NULL, 'S' },
		{ "dev-dir", required_argument, NULL, 'D' },
		{ "no-mlock", no_argument, NULL, 'M' },
		{ "no-oom-protect", no_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.port_name = DEFAULT_PORT, .sysfs_root = "/sys", .dev_dir = "/dev",
		.cgroup_dir = "/sys/fs/cgroup", .psi_stall_us = 100000,
		.psi_window_us = 1000000, .retry_ms = 200,
	};
	struct agent_cfg cfg = { 0 };
	struct agent *a;
	struct sigaction sa = { .sa_handler = on_signal };
	int c, fd = -1, psi_fd = -1, rc;
	bool is_socket = false, host_gone = false;
	uint64_t retry_at = 0;
	int last_open_err = 0;
	char buf[4096];

	while ((c = getopt_long(argc, argv, "vh", lopts, NULL)) != -1) {
		switch (c) {
		case 'p': o.port_name = optarg; break;
		case 'd': o.device = optarg; break;
		case 'P': o.period_ms = parse_u32(optarg, "--period-ms"); break;
		case 's': o.psi_stall_us = parse_u32(optarg, "--psi-stall-us"); break;
		case 'w': o.psi_window_us = parse_u32(optarg, "--psi-window-us"); break;
		case 'c': o.cgroup_dir = optarg; break;
		case 'r': o.retry_ms = parse_u32(optarg, "--retry-ms"); break;
		case 'S': o.sysfs_root = optarg; break;
		case 'D': o.dev_dir = optarg; break;
		case 'M': o.no_mlock = true; break;
		case 'O': o.no_oom_protect = true; break;
		case 'v': o.verbose++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (o.retry_ms < 10)
		o.retry_ms = 10;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	cfg.cgroup_dir = setup_cgroup(o.cgroup_dir);
	cfg.report_period_ms = o.period_ms;
	cfg.psi_stall_us = o.psi_stall_us;
	cfg.psi_window_us = o.psi_window_us;
	cfg.log = core_log;
	cfg.log_ctx = &o.verbose;
	rc = agent_create(&cfg, &a);
	if (rc) {
		logmsg("agent_create: %s", strerror(-rc));
		return 1;
	}

	/* The agent is what asks the host for help when memory runs out: keep
	 * it resident and out of the OOM killer's way. */
	if (!o.no_oom_protect) {
		int ofd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

		if (ofd < 0 || write(ofd, "-1000", 5) != 5)
			logmsg("cannot set oom_score_adj: %s", strerror(errno));
		if (ofd >= 0)
			close(ofd);
	}
	if (!o.no_mlock && mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
		logmsg("mlockall: %s (continuing unlocked)", strerror(errno));

	psi_fd = arm_psi(a, o.psi_stall_us, o.psi_window_us);
	if (psi_fd < 0)
		logmsg("PSI trigger unavailable (%s): no pressure messages "
		       "(Debian kernels need psi=1 on the command line)", strerror(-psi_fd));
	agent_set_psi_armed(a, psi_fd >= 0);

	while (!stop_flag) {
		struct pollfd pfd[2];
		uint64_t t = now_ms();
		uint32_t wait_ms = agent_tick(a, t);
		const char *out;
		size_t out_len;
		nfds_t n = 0;
		int port_idx = -1, psi_idx = -1;
		uint32_t stall, window;
		bool changed;

		agent_psi_config(a, &stall, &window, &changed);
		if (changed) {
			int nfd = arm_psi(a, stall, window);

			if (nfd < 0) {
				logmsg("re-arming PSI trigger some %u %u: %s", stall, window,
				       strerror(-nfd));
			} else {
				if (psi_fd >= 0)
					close(psi_fd);
				psi_fd = nfd;
				agent_set_psi_armed(a, true);
			}
		}

		if (fd < 0 && t >= retry_at) {
			fd = open_channel(&o, &is_socket);
			if (fd < 0) {
				if (fd != last_open_err)
					logmsg("waiting for port %s: %s",
					       o.device ? o.device : o.port_name, strerror(-fd));
				last_open_err = fd;
				fd = -1;
				retry_at = t + o.retry_ms;
			} else {
				last_open_err = 0;
				host_gone = false;
				agent_reset_session(a);
				if (o.verbose)
					logmsg("channel open");
			}
		}
		if (fd >= 0 && (!host_gone || t >= retry_at)) {
			pfd[n].fd = fd;
			agent_output(a, &out, &out_len);
			pfd[n].events = POLLIN | (out_len ? POLLOUT : 0);
			port_idx = (int)n++;
		}
		if (psi_fd >= 0) {
			pfd[n].fd = psi_fd;
			pfd[n].events = POLLPRI;
			psi_idx = (int)n++;
		}
		if ((fd < 0 || host_gone) && retry_at > t && retry_at - t < wait_ms)
			wait_ms = (uint32_t)(retry_at - t);
		rc = poll(pfd, n, wait_ms == UINT32_MAX ? -1 : (int)(wait_ms > INT32_MAX ? INT32_MAX : wait_ms));
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			logmsg("poll: %s", strerror(errno));
			break;
		}
		t = now_ms();
		if (psi_idx >= 0 && pfd[psi_idx].revents) {
			if (pfd[psi_idx].revents & POLLPRI) {
				agent_pressure(a, t);
			} else {
				/* POLLERR: the trigger is gone; try again later. */
				close(psi_fd);
				psi_fd = -1;
				agent_set_psi_armed(a, false);
			}
		}
		if (port_idx < 0 || !pfd[port_idx].revents)
			continue;
		if (pfd[port_idx].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r > 0) {
				if (host_gone && o.verbose)
					logmsg("host is back");
				host_gone = false;
				agent_input(a, buf, (size_t)r, t);
			} else if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
				if (r < 0 || is_socket) {
					if (r < 0)
						logmsg("read: %s; reopening", strerror(errno));
					close(fd);
					fd = -1;
				} else if (!host_gone && o.verbose) {
					logmsg("host closed the port; waiting");
				}
				host_gone = true;
				agent_reset_session(a);
				retry_at = t + o.retry_ms;
				continue;
			}
		}
		agent_output(a, &out, &out_len);
		if (out_len && !host_gone) {
			ssize_t w = write(fd, out, out_len);

			if (w > 0) {
				agent_output_consume(a, (size_t)w);
			} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
				logmsg("write: %s; reopening", strerror(errno));
				close(fd);
				fd = -1;
				host_gone = true;
				agent_reset_session(a);
				retry_at = t + o.retry_ms;
			}
		}
	}
	if (fd >= 0)
		close(fd);
	if (psi_fd >= 0)
		close(psi_fd);
	agent_destroy(a);
	return 0;
}
