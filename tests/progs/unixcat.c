/*
 * unixcat - talk line by line to a unix stream socket (busybox nc has no -U):
 * used by the box scenarios for ebb's agent socket and QEMU's QMP socket.
 *
 *   unixcat [-t SECS] [-n LINES] [-w MATCH] PATH [LINE...]
 *
 * Connects to PATH (retrying for up to SECS while it does not exist yet),
 * sends each LINE with a newline, then copies what arrives to stdout until
 * LINES lines arrived (-n), a line containing MATCH arrived (-w), the peer
 * closed, or SECS seconds passed.  Exits 0 when the -n/-w condition was met
 * (or neither was given and the peer closed or time ran out), 1 otherwise.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double secs = 10, end;
	long want_lines = -1, nr_lines = 0;
	const char *match = NULL;
	char buf[65536], line[65536];
	size_t line_len = 0;
	int c, fd = -1, i;

	while ((c = getopt(argc, argv, "t:n:w:")) != -1) {
		switch (c) {
		case 't': secs = atof(optarg); break;
		case 'n': want_lines = atol(optarg); break;
		case 'w': match = optarg; break;
		default:
			fprintf(stderr, "usage: unixcat [-t SECS] [-n LINES] [-w MATCH] PATH [LINE...]\n");
			return 2;
		}
	}
	if (optind >= argc || strlen(argv[optind]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "unixcat: give a socket path\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[optind]);
	end = now_s() + secs;
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (fd >= 0)
			close(fd);
		if (now_s() > end) {
			fprintf(stderr, "unixcat: connect %s: %s\n", sa.sun_path, strerror(errno));
			return 1;
		}
		usleep(100000);
	}
	for (i = optind + 1; i < argc; i++) {
		size_t len = strlen(argv[i]);

		if (write(fd, argv[i], len) != (ssize_t)len || write(fd, "\n", 1) != 1) {
			fprintf(stderr, "unixcat: write: %s\n", strerror(errno));
			return 1;
		}
	}
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = end - now_s();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		fwrite(buf, 1, (size_t)n, stdout);
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] != '\n') {
				if (line_len < sizeof(line) - 1)
					line[line_len++] = buf[k];
				continue;
			}
			line[line_len] = '\0';
			line_len = 0;
			nr_lines++;
			if ((match && strstr(line, match)) ||
			    (want_lines >= 0 && nr_lines >= want_lines)) {
				fflush(stdout);
				return 0;
			}
		}
	}
	fflush(stdout);
	return match || want_lines >= 0 ? 1 : 0;
}
