/*
 * tests/unit/test_vmm_logcap.c — the size cap of the --detach log
 * (vmm/logcap.c).  A writer pushes numbered lines (what a guest printing
 * forever on its console looks like) through a real pipe; the copy keeps
 * NAME.log and NAME.log.1 within the cap each, the newest output is all
 * there and in order across the two files, the rotation says so in the
 * file, the counters add up, and a symlink planted at either name is never
 * followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/logcap.h"

#define NR_LINES 100000u

struct feeder {
	int fd;
	uint64_t nr_bytes;
};

static void *feed(void *arg)
{
	struct feeder *f = arg;
	char line[64];
	unsigned i;

	for (i = 0; i < NR_LINES; i++) {
		int n = snprintf(line, sizeof(line), "guest line %08u\n", i);

		assert_true(write(f->fd, line, (size_t)n) == n);
		f->nr_bytes += (uint64_t)n;
	}
	close(f->fd);
	return NULL;
}

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* The number of the last complete "guest line N" in buf, or -1. */
static long last_line_no(const char *buf)
{
	const char *p = buf, *q;
	long last = -1;

	while ((q = strstr(p, "guest line ")) != NULL) {
		if (strchr(q, '\n'))
			last = strtol(q + 11, NULL, 10);
		p = q + 11;
	}
	return last;
}

static void test_cap_and_rotation(void **state)
{
	const uint64_t cap = 64 * 1024;
	char dir[64], path[128], old[136], victim[128];
	struct vmm_logcap_stats st;
	struct feeder f = { 0 };
	pthread_t t;
	char *cur, *prev;
	size_t cur_len, prev_len;
	long first_cur, last_prev;
	int pfd[2], fd;
	struct stat sb;

	strcpy(dir, "/tmp/test_vmm_logcap.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.log", dir);
	snprintf(old, sizeof(old), "%s/vm.log.1", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	/* Planted symlinks at both names, to a file that must stay as it is. */
	fd = open(victim, O_CREAT | O_WRONLY, 0644);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(symlink(victim, path), 0);
	assert_int_equal(symlink(victim, old), 0);

	assert_int_equal(pipe(pfd), 0);
	f.fd = pfd[1];
	assert_int_equal(pthread_create(&t, NULL, feed, &f), 0);
	assert_int_equal(vmm_logcap_copy(pfd[0], path, cap, &st), 0);
	pthread_join(t, NULL);
	close(pfd[0]);

	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_size, 4);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_true((uint64_t)sb.st_size <= cap);
	assert_int_equal(lstat(old, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_true((uint64_t)sb.st_size <= cap);

	assert_int_equal(st.nr_bytes_in, f.nr_bytes);
	assert_true(st.nr_rotations >= f.nr_bytes / cap - 1);
	cur = slurp(path, &cur_len);
	prev = slurp(old, &prev_len);
	/* Kept + dropped = written (the markers aside). */
	assert_true(st.nr_bytes_dropped < f.nr_bytes);
	assert_true(cur_len + prev_len + st.nr_bytes_dropped >= f.nr_bytes);
	/* Both files start with the marker; the newest line is the last one. */
	assert_non_null(strstr(cur, "ebb: log rotated"));
	assert_true(strncmp(cur, "ebb: log rotated", 16) == 0);
	assert_int_equal(last_line_no(cur), (long)NR_LINES - 1);
	/* Nothing lost across the rotation: NAME.log.1 ends where NAME.log
	 * begins (a line may be split between the two). */
	last_prev = last_line_no(prev);
	first_cur = strtol(strstr(strchr(cur, '\n') + 1, "guest line ") + 11, NULL, 10);
	assert_true(first_cur == last_prev + 1 || first_cur == last_prev + 2);
	free(cur);
	free(prev);
	unlink(path);
	unlink(old);
	unlink(victim);
	rmdir(dir);
}

static void test_small_output_untouched(void **state)
{
	char dir[64], path[128], *buf;
	struct vmm_logcap_stats st;
	size_t len;
	int pfd[2];

	strcpy(dir, "/tmp/test_vmm_logcap.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.log", dir);
	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(write(pfd[1], "hello\n", 6), 6);
	close(pfd[1]);
	/* Below the minimum the cap is raised to it. */
	assert_int_equal(vmm_logcap_copy(pfd[0], path, 1, &st), 0);
	close(pfd[0]);
	buf = slurp(path, &len);
	assert_string_equal(buf, "hello\n");
	assert_int_equal(st.nr_rotations, 0);
	assert_int_equal(st.nr_bytes_dropped, 0);
	free(buf);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_and_rotation),
		cmocka_unit_test(test_small_output_untouched),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
