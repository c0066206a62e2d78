/*
 * mce_victim: the guest side of the box scenario mce_ebb.sh (a page of guest
 * RAM lost on the host becomes a machine check that kills only the process
 * using it).  Run it inside an ebb guest, as root (it reads
 * /proc/self/pagemap for physical addresses).
 *
 * It maps 16 pages, fills each with its own pattern, locks them, and prints
 *   mce-victim: gpa=0x...        the guest-physical address of page 7
 * then waits for a line on stdin (the host poisons that page meanwhile),
 * checks that the 15 other pages still hold their patterns, and reads page
 * 7.  A SIGBUS there (the guest kernel's answer to the machine check) is
 * reported as
 *   mce-victim: SIGBUS code=N at the lost page
 * and the program exits 42.  Reading the page without a signal prints
 * "mce-victim: no SIGBUS; the page reads intact|CORRUPT (N bad bytes), now
 * at gpa=0x..." and exits 1 (intact) or 2; a bad pattern elsewhere exits 2.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NR_PAGES 16
#define VICTIM 7
#define PAGE 4096

static uint8_t *area;

static uint8_t pattern(unsigned page, unsigned off)
{
	return (uint8_t)(page * 37 + off * 11 + 5);
}

static void say(const char *s)
{
	if (write(STDOUT_FILENO, s, strlen(s)) < 0) {
		/* the console is gone: nothing to do */
	}
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	char msg[96];
	int n;
	uintptr_t a = (uintptr_t)si->si_addr, v = (uintptr_t)(area + VICTIM * PAGE);

	(void)sig;
	(void)uc;
	n = snprintf(msg, sizeof(msg), "mce-victim: SIGBUS code=%d %s\n", si->si_code,
		     a >= v && a < v + PAGE ? "at the lost page" : "ELSEWHERE");
	if (n > 0 && write(STDOUT_FILENO, msg, (size_t)n) < 0) {
		/* nothing to do */
	}
	_exit(42);
}

int main(void)
{
	struct sigaction sa;
	uint64_t entry;
	char line[64];
	unsigned p, o, bad = 0;
	volatile uint8_t sink;
	int fd;

	area = mmap(NULL, NR_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		    -1, 0);
	if (area == MAP_FAILED) {
		perror("mce-victim: mmap");
		return 3;
	}
	for (p = 0; p < NR_PAGES; p++)
		for (o = 0; o < PAGE; o++)
			area[p * PAGE + o] = pattern(p, o);
	if (mlock(area, NR_PAGES * PAGE) < 0)
		perror("mce-victim: mlock (continuing)");
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0 || pread(fd, &entry, sizeof(entry),
			    (off_t)(((uintptr_t)area / PAGE + VICTIM) * sizeof(entry))) !=
			      (ssize_t)sizeof(entry) ||
	    !(entry >> 63) || !(entry & ((1ull << 55) - 1))) {
		say("mce-victim: cannot read the page's frame from /proc/self/pagemap (root?)\n");
		return 3;
	}
	close(fd);
	printf("mce-victim: gpa=0x%llx\n", (unsigned long long)((entry & ((1ull << 55) - 1)) * PAGE));
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin)) {
		say("mce-victim: no go line\n");
		return 3;
	}
	for (p = 0; p < NR_PAGES; p++) {
		if (p == VICTIM)
			continue;
		for (o = 0; o < PAGE; o++)
			bad += area[p * PAGE + o] != pattern(p, o);
	}
	printf("mce-victim: other pages %s (%u bad bytes)\n", bad ? "CORRUPT" : "intact", bad);
	fflush(stdout);
	if (bad)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	sink = area[VICTIM * PAGE + 123];
	(void)sink;
	/* No machine check: say whether the page still holds its pattern and
	 * where it is now (the guest kernel may have moved it, e.g. compaction:
	 * then the host lost a page the victim no longer uses). */
	for (o = 0; o < PAGE; o++)
		bad += area[VICTIM * PAGE + o] != pattern(VICTIM, o);
	entry = 0;
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd >= 0 && pread(fd, &entry, sizeof(entry),
			     (off_t)(((uintptr_t)area / PAGE + VICTIM) * sizeof(entry))) !=
			       (ssize_t)sizeof(entry))
		entry = 0;
	if (fd >= 0)
		close(fd);
	printf("mce-victim: no SIGBUS; the page reads %s (%u bad bytes), now at gpa=0x%llx\n",
	       bad ? "CORRUPT" : "intact", bad,
	       (unsigned long long)((entry & ((1ull << 55) - 1)) * PAGE));
	fflush(stdout);
	return bad ? 2 : 1;
}
