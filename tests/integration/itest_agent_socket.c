/*
 * itest_agent_socket - the real ebb-agent binary on this machine, with its
 * channel on a unix socket (--device) instead of a virtio-serial port: hello,
 * a report checked against this machine's /proc/meminfo, garbage, the host
 * side closing and the agent reconnecting, periodic reports, clean exit on
 * SIGTERM.  No reclaim requests: they would drop this shared machine's caches.
 * Complements itest_agent_qemu (which needs the guest image) by running
 * everywhere the agent builds.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/agent_client.h"
#include "tests/integration/tap.h"

static int accept_within(int lfd, int timeout_ms)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };

	if (poll(&pfd, 1, timeout_ms) != 1)
		return -1;
	return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

static long long host_memtotal_bytes(void)
{
	char line[256];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "MemTotal:", 9) == 0) {
			kb = strtoll(line + 9, NULL, 10);
			break;
		}
	fclose(f);
	return kb * 1024;
}

int main(void)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char agent[300], dir[64], sock[128];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct agent_client_cfg cfg = { 0 };
	struct agent_client *cl;
	struct agent_hello h;
	struct agent_report r;
	struct agent_event ev;
	int lfd, fd, rc, st, periodic = 0;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(agent, sizeof(agent), "%s/bin/ebb-agent", build);
	if (access(agent, X_OK) != 0) {
		printf("no %s (run make)\n", agent);
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/itest_agent_socket.XXXXXX");
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	strcpy(sa.sun_path, sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0) {
		printf("Bail out! socket: %s\n", strerror(errno));
		return 1;
	}
	pid = fork();
	if (pid == 0) {
		execl(agent, agent, "--device", sock, "--no-mlock", "--no-oom-protect",
		      "--cgroup", "/nonexistent", "--retry-ms", "50", (char *)NULL);
		_exit(127);
	}

	fd = accept_within(lfd, 10000);
	ok(fd >= 0, "agent connected to the socket");
	if (fd < 0)
		goto out;
	cfg.fd = fd;
	if (agent_client_create(&cfg, &cl) != 0)
		goto out;
	rc = agent_client_hello(cl, 5000, &h);
	ok(rc == 0 && h.version == 1 && h.pid == pid && (h.caps & AGENT_CAP_REPORT) &&
	   !(h.caps & AGENT_CAP_PROACTIVE),
	   "hello: rc %d, pid %" PRId64 ", caps 0x%x (no proactive without memory.reclaim)",
	   rc, h.pid, h.caps);
	rc = agent_client_report(cl, 5000, &r);
	ok(rc == 0 && r.have_meminfo && (long long)r.meminfo.total_bytes == host_memtotal_bytes() &&
	   r.have_vmstat,
	   "report: MemTotal %" PRIu64 " equals this machine's", r.meminfo.total_bytes);

	/* Garbage, then a valid request. */
	{
		static const char junk[] = "\xff\xfe garbage\n{\"type\":\"x\",\"id\":1}\n{\"id\":\n";
		char big[5000];
		ssize_t w;

		memset(big, '[', sizeof(big));
		big[sizeof(big) - 1] = '\n';
		w = write(fd, junk, sizeof(junk) - 1);
		w += write(fd, big, sizeof(big));
		rc = agent_client_report(cl, 5000, &r);
		ok(w == (ssize_t)(sizeof(junk) - 1 + sizeof(big)) && rc == 0 &&
		   r.agent_nr_bad_requests == 4 && r.agent_nr_long_lines == 1,
		   "garbage answered with errors (%" PRIu64 "), agent still serving",
		   r.agent_nr_bad_requests);
	}

	/* Host side goes away: the agent reconnects and needs a new hello. */
	agent_client_destroy(cl);
	fd = accept_within(lfd, 10000);
	ok(fd >= 0, "agent reconnected after the host closed");
	if (fd < 0)
		goto out;
	cfg.fd = fd;
	if (agent_client_create(&cfg, &cl) != 0)
		goto out;
	rc = agent_client_report(cl, 5000, &r);
	ok(rc == -EREMOTEIO && strcmp(agent_client_last_error(cl)->code, "need_hello") == 0,
	   "new connection needs hello (rc %d)", rc);
	rc = agent_client_hello(cl, 5000, &h);
	if (rc == 0)
		rc = agent_client_report(cl, 5000, &r);
	ok(rc == 0 && r.agent_nr_sessions == 2 && r.agent_pid == pid,
	   "second session on the same agent (sessions %" PRIu64 ")", r.agent_nr_sessions);

	/* Periodic reports. */
	rc = agent_client_config(cl, 200, -1, -1, 5000);
	while (rc == 0 && periodic < 3 && agent_client_next_event(cl, 3000, &ev) == 0)
		periodic += ev.type == AGENT_EV_REPORT && ev.u.report.unsolicited;
	ok(periodic == 3, "periodic reports every 200 ms (%d seen)", periodic);
	agent_client_destroy(cl);

out:
	kill(pid, SIGTERM);
	rc = waitpid(pid, &st, 0);
	ok(rc == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "agent exits 0 on SIGTERM");
	close(lfd);
	unlink(sock);
	rmdir(dir);
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
