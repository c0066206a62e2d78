/*
 * memhog - squeeze a (guest) system's memory for pressure tests.
 *
 * Allocates anonymous memory in steps, writing and reading back every page
 * (so the compiler cannot drop it and the kernel must back it), until
 * MemAvailable falls below --leave MiB (or --max MiB is held).  Then, for
 * --time seconds, keeps its memory hot and, with --reread FILE, reads FILE
 * over and over so that page cache churns under the squeeze: kswapd and
 * direct reclaim run, which is what PSI memory pressure measures.
 * Prints one progress line per phase; exits 0.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024ul * 1024ul)
#define MAX_CHUNKS 4096

static long mem_available_mib(void)
{
	char buf[4096];
	long kb = -1;
	ssize_t n;
	int fd = open("/proc/meminfo", O_RDONLY);
	char *p;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, "MemAvailable:");
	if (p)
		kb = strtol(p + 13, NULL, 10);
	return kb < 0 ? -1 : kb / 1024;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long touch(unsigned char *p, size_t len, unsigned char v)
{
	volatile unsigned char *q = p;
	unsigned long sum = 0;

	for (size_t i = 0; i < len; i += 4096)
		q[i] = v;
	for (size_t i = 0; i < len; i += 4096)
		sum += q[i];
	return sum;
}

int main(int argc, char **argv)
{
	long leave_mib = 48, step_mib = 4, max_mib = 1L << 20, secs = 10;
	const char *reread = NULL;
	unsigned char *chunks[MAX_CHUNKS];
	unsigned long sum = 0;
	size_t nr = 0;
	char *rbuf;
	double end;
	int c;

	while ((c = getopt(argc, argv, "l:s:m:t:r:")) != -1) {
		switch (c) {
		case 'l': leave_mib = atol(optarg); break;
		case 's': step_mib = atol(optarg); break;
		case 'm': max_mib = atol(optarg); break;
		case 't': secs = atol(optarg); break;
		case 'r': reread = optarg; break;
		default:
			fprintf(stderr, "usage: memhog [-l leave_mib] [-s step_mib] [-m max_mib] "
				"[-t hold_s] [-r file]\n");
			return 2;
		}
	}
	if (step_mib < 1)
		step_mib = 1;
	while (nr < MAX_CHUNKS && (long)nr * step_mib < max_mib) {
		long avail = mem_available_mib();
		unsigned char *p;

		if (avail >= 0 && avail < leave_mib)
			break;
		p = mmap(NULL, (size_t)step_mib * MIB, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			break;
		sum += touch(p, (size_t)step_mib * MIB, (unsigned char)(nr + 1));
		chunks[nr++] = p;
	}
	printf("memhog: held %ld MiB, MemAvailable %ld MiB\n", (long)nr * step_mib,
	       mem_available_mib());
	fflush(stdout);
	rbuf = malloc(MIB);
	end = now_s() + (double)secs;
	while (now_s() < end) {
		for (size_t i = 0; i < nr; i++)
			sum += touch(chunks[i], (size_t)step_mib * MIB, (unsigned char)i);
		if (reread && rbuf) {
			int fd = open(reread, O_RDONLY);

			if (fd >= 0) {
				while (read(fd, rbuf, MIB) > 0 && now_s() < end)
					sum += (unsigned char)rbuf[0];
				close(fd);
			}
		} else {
			usleep(100000);
		}
	}
	printf("memhog: done, held %ld MiB, MemAvailable %ld MiB (checksum %lu)\n",
	       (long)nr * step_mib, mem_available_mib(), sum & 0xff);
	return 0;
}
