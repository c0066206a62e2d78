/*
 * vmm/bin/ebb_top.c — `ebb top`: the pool and one row per VM, refreshed.
 *
 * Each frame: every VM's `stats` (its engine, balloon, limits and
 * protections: works without ebbd), then, when ebbd answers on ebbd.sock,
 * its `pool` (the pool line) and `vms` (the balancer's working-set
 * estimate and the last action it took on each VM and why).  Rates
 * (refaults/s, swap-ins/s, PSI %) are the difference of two frames divided
 * by the time between them, so the first frame shows '-' for them.
 *
 * Full screen with ncurses when stdout is a terminal; otherwise, or with
 * -b, plain text frames (like top -b) for scripts and logs.  Everything a
 * VM or ebbd answers is hostile: fields are read by type with defaults, and
 * names are printed only if they are valid VM names.
 */
#include <curses.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl.h"
#include "client/discover.h"
#include "client/rundir.h"
#include "vmm/bin/ebb_top.h"

#define TOP_MAX_VMS 512u
#define TOP_CALL_MS 1000

struct top_vm {
	char name[64];
	bool ok;                      /* stats answered */
	bool engine;                  /* it has a reclaim engine (limits, stores) */
	int64_t guest, resident, swap_z, swap_f, balloon, ksm, high, max, min, low, weight;
	bool clamped;
	uint64_t nr_refaults, nr_swapins, psi_some_us, psi_full_us;
	/* rates from the previous frame (valid when have_rates) */
	bool have_rates;
	double refaults_s, swapins_s, psi_some_pct, psi_full_pct;
	/* from ebbd */
	bool in_pool;
	int64_t wss;
	char last[64];
};

struct top_frame {
	struct top_vm vms[TOP_MAX_VMS];
	size_t nr;
	uint64_t at_ns;
	bool ebbd;
	char pool_line[256];
	char pool_line2[256];
};

enum top_sort { SORT_NAME, SORT_RES, SORT_SWAP, SORT_WSS, SORT_REFAULTS, SORT_PSI, SORT_NR };
static const char sort_keys[SORT_NR + 1] = "nrswfp";
static const char *const sort_names[SORT_NR] = {
	"name", "resident", "swapped", "working set", "refaults/s", "psi some"
};

struct top {
	char rundir[256];
	struct top_frame *cur, *prev;
	enum top_sort sort;
	bool reverse;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* CLIENT-side reads of hostile replies: the wrong type is the default. */
static int64_t jget(struct json_object *o, const char *key, int64_t def)
{
	return vmm_json_int(o, key, def);
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static struct json_object *call(const char *rundir, const char *name, const char *cmd)
{
	return vmm_ctl_query(rundir, name, cmd, TOP_CALL_MS);
}

static void add_name(void *opaque, const char *name)
{
	struct top_frame *f = opaque;

	if (!strcmp(name, EBB_DISCOVER_RESERVED_NAME) || f->nr >= TOP_MAX_VMS ||
	    strlen(name) >= sizeof(f->vms[0].name))
		return;
	memset(&f->vms[f->nr], 0, sizeof(f->vms[0]));
	snprintf(f->vms[f->nr].name, sizeof(f->vms[0].name), "%s", name);
	f->nr++;
}

static void observe_vm(const char *rundir, struct top_vm *v)
{
	struct json_object *r = call(rundir, v->name, "stats"), *pool = NULL, *b = NULL, *x;
	int64_t p;

	v->high = v->max = v->wss = -1;
	if (!r)
		return;
	v->ok = true;
	v->engine = json_object_object_get_ex(r, "engine", &x) && json_object_is_type(x, json_type_boolean) &&
		    json_object_get_boolean(x);
	v->guest = jget(r, "mem_bytes", -1);
	if (v->engine) {
		v->resident = jget(r, "resident_bytes", 0) + jget(r, "compressed_bytes", 0);
		v->swap_z = jget(r, "compressed_pages", 0) * 4096;
		v->swap_f = jget(r, "file_pages", 0) * 4096;
		p = jget(r, "high_bytes", 0);
		v->high = p > 0 ? p : -1;
		p = jget(r, "max_bytes", 0);
		v->max = p > 0 ? p : -1;
		v->nr_refaults = (uint64_t)jget(r, "nr_refaults", 0);
		v->nr_swapins = (uint64_t)jget(r, "nr_swapped_in", 0);
		v->psi_some_us = (uint64_t)jget(r, "psi_some_us", 0);
		v->psi_full_us = (uint64_t)jget(r, "psi_full_us", 0);
		v->ksm = jget(r, "ksm_merging_pages", -1);
		if (v->ksm >= 0)
			v->ksm *= 4096;
	} else {
		v->resident = v->guest;
		v->swap_z = v->swap_f = v->ksm = -1;
	}
	if (json_object_object_get_ex(r, "pool", &pool) && json_object_is_type(pool, json_type_object)) {
		v->min = jget(pool, "min_bytes", -1);
		v->low = jget(pool, "low_bytes", -1);
		v->weight = jget(pool, "weight", -1);
		v->clamped = json_object_object_get_ex(pool, "clamp", &x) &&
			     json_object_is_type(x, json_type_object);
	} else {
		v->min = v->low = v->weight = -1;
	}
	if (json_object_object_get_ex(r, "balloon", &b) && json_object_is_type(b, json_type_object))
		v->balloon = jget(b, "actual_pages", 0) * 4096;
	else
		v->balloon = -1;
	json_object_put(r);
}

static void fmt_size(int64_t b, char *buf, size_t len)
{
	if (b < 0)
		snprintf(buf, len, "-");
	else if (b >= (1ll << 30) * 10)
		snprintf(buf, len, "%.0fG", (double)b / (double)(1ll << 30));
	else if (b >= 1ll << 30)
		snprintf(buf, len, "%.1fG", (double)b / (double)(1ll << 30));
	else if (b >= 1ll << 20)
		snprintf(buf, len, "%.0fM", (double)b / (double)(1ll << 20));
	else
		snprintf(buf, len, "%.0fK", (double)b / 1024.0);
}

static void observe_ebbd(const char *rundir, struct top_frame *f)
{
	struct json_object *p = call(rundir, EBB_DISCOVER_RESERVED_NAME, "pool"), *r, *arr;
	char b[5][16];
	size_t i, j, n;

	f->ebbd = p != NULL;
	if (!p) {
		snprintf(f->pool_line, sizeof(f->pool_line),
			 "pool: ebbd is not running (VMs only: no pool, working set or last action)");
		f->pool_line2[0] = '\0';
		return;
	}
	fmt_size(jget(p, "budget_bytes", -1), b[0], sizeof(b[0]));
	fmt_size(jget(p, "used_bytes", -1), b[1], sizeof(b[1]));
	fmt_size(jget(p, "free_bytes", -1), b[2], sizeof(b[2]));
	snprintf(f->pool_line, sizeof(f->pool_line),
		 "pool: budget %s, used %s, free %s; balancer %s, priority %lld, policy %s; %lld VMs",
		 b[0], b[1], b[2], jstr(p, "state") ? jstr(p, "state") : "?",
		 (long long)jget(p, "priority", -1), jstr(p, "policy") ? jstr(p, "policy") : "?",
		 (long long)jget(p, "nr_vms", -1));
	fmt_size(jget(p, "wmark_min_bytes", -1), b[0], sizeof(b[0]));
	fmt_size(jget(p, "wmark_low_bytes", -1), b[1], sizeof(b[1]));
	fmt_size(jget(p, "wmark_high_bytes", -1), b[2], sizeof(b[2]));
	fmt_size(jget(p, "boost_bytes", -1), b[3], sizeof(b[3]));
	snprintf(f->pool_line2, sizeof(f->pool_line2),
		 "      watermarks min %s, low %s, high %s (boost %s)", b[0], b[1], b[2], b[3]);
	json_object_put(p);
	r = call(rundir, EBB_DISCOVER_RESERVED_NAME, "vms");
	if (!r || !json_object_object_get_ex(r, "vms", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		json_object_put(r);
		return;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(arr, i);
		const char *name = jstr(o, "name"), *act = jstr(o, "last_action"),
			   *why = jstr(o, "last_reason");

		if (!name)
			continue;
		for (j = 0; j < f->nr; j++) {
			struct top_vm *v = &f->vms[j];

			if (strcmp(v->name, name) != 0)
				continue;
			v->in_pool = true;
			v->wss = jget(o, "ws_estimate_bytes", -1);
			if (act && why && vmm_name_valid(act) && vmm_name_valid(why))
				snprintf(v->last, sizeof(v->last), "%s (%s)", act, why);
		}
	}
	json_object_put(r);
}

static void rates(struct top_frame *cur, const struct top_frame *prev)
{
	double dt;
	size_t i, j;

	if (!prev || cur->at_ns <= prev->at_ns)
		return;
	dt = (double)(cur->at_ns - prev->at_ns) / 1e9;
	for (i = 0; i < cur->nr; i++) {
		struct top_vm *v = &cur->vms[i];

		if (!v->ok || !v->engine)
			continue;
		for (j = 0; j < prev->nr; j++) {
			const struct top_vm *o = &prev->vms[j];

			if (strcmp(o->name, v->name) != 0 || !o->ok || !o->engine)
				continue;
			if (v->nr_refaults < o->nr_refaults || v->nr_swapins < o->nr_swapins ||
			    v->psi_some_us < o->psi_some_us || v->psi_full_us < o->psi_full_us)
				break;    /* restarted under the same name */
			v->have_rates = true;
			v->refaults_s = (double)(v->nr_refaults - o->nr_refaults) / dt;
			v->swapins_s = (double)(v->nr_swapins - o->nr_swapins) / dt;
			v->psi_some_pct = (double)(v->psi_some_us - o->psi_some_us) / (dt * 1e4);
			v->psi_full_pct = (double)(v->psi_full_us - o->psi_full_us) / (dt * 1e4);
			break;
		}
	}
}

static void observe(struct top *t)
{
	struct top_frame *f = t->prev;   /* reuse the older buffer */
	size_t i;

	t->prev = t->cur;
	t->cur = f;
	f->nr = 0;
	(void)vmm_list_names(t->rundir, add_name, f);
	for (i = 0; i < f->nr; i++)
		observe_vm(t->rundir, &f->vms[i]);
	f->at_ns = mono_ns();
	observe_ebbd(t->rundir, f);
	rates(f, t->prev->at_ns ? t->prev : NULL);
}

static double sort_value(const struct top_vm *v, enum top_sort s)
{
	switch (s) {
	case SORT_RES:
		return (double)v->resident;
	case SORT_SWAP:
		return (double)(v->swap_z > 0 ? v->swap_z : 0) + (double)(v->swap_f > 0 ? v->swap_f : 0);
	case SORT_WSS:
		return (double)v->wss;
	case SORT_REFAULTS:
		return v->have_rates ? v->refaults_s : -1;
	case SORT_PSI:
		return v->have_rates ? v->psi_some_pct : -1;
	default:
		return 0;
	}
}

static int cmp_vm(const void *a, const void *b, void *arg)
{
	const struct top_vm *x = a, *y = b;
	const struct top *t = arg;
	int c;

	if (t->sort == SORT_NAME) {
		c = strcmp(x->name, y->name);
	} else {
		double dx = sort_value(x, t->sort), dy = sort_value(y, t->sort);

		c = dx > dy ? -1 : dx < dy ? 1 : strcmp(x->name, y->name);   /* biggest first */
	}
	return t->reverse ? -c : c;
}

static void fmt_rate(bool have, double v, char *buf, size_t len)
{
	if (!have)
		snprintf(buf, len, "-");
	else if (v >= 10000)
		snprintf(buf, len, "%.0fk", v / 1000);
	else
		snprintf(buf, len, "%.0f", v);
}

static void fmt_pct(bool have, double v, char *buf, size_t len)
{
	if (!have)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", v > 100 ? 100 : v);
}

#define HEADER_FMT "%-14s %7s %7s %7s %7s %7s %7s %7s %7s %6s %6s %7s %7s %7s %7s %5s %-5s %s"

static void header(char *buf, size_t len)
{
	snprintf(buf, len, HEADER_FMT, "NAME", "RES", "SWAP-Z", "SWAP-F", "BALLOON", "KSM", "WSS",
		 "RFLT/s", "SWPIN/s", "PSI-S%", "PSI-F%", "HIGH", "MAX", "MIN", "LOW", "WT",
		 "CLAMP", "LAST ACTION (WHY)");
}

static void row(const struct top_vm *v, char *buf, size_t len)
{
	char c[14][16], wt[24];

	if (!v->ok) {
		snprintf(buf, len, "%-14.14s (no answer)", v->name);
		return;
	}
	fmt_size(v->resident, c[0], sizeof(c[0]));
	fmt_size(v->swap_z, c[1], sizeof(c[1]));
	fmt_size(v->swap_f, c[2], sizeof(c[2]));
	fmt_size(v->balloon, c[3], sizeof(c[3]));
	fmt_size(v->ksm, c[4], sizeof(c[4]));
	fmt_size(v->in_pool ? v->wss : -1, c[5], sizeof(c[5]));
	fmt_rate(v->have_rates, v->refaults_s, c[6], sizeof(c[6]));
	fmt_rate(v->have_rates, v->swapins_s, c[7], sizeof(c[7]));
	fmt_pct(v->have_rates, v->psi_some_pct, c[8], sizeof(c[8]));
	fmt_pct(v->have_rates, v->psi_full_pct, c[9], sizeof(c[9]));
	fmt_size(v->high, c[10], sizeof(c[10]));
	fmt_size(v->max, c[11], sizeof(c[11]));
	fmt_size(v->min, c[12], sizeof(c[12]));
	fmt_size(v->low, c[13], sizeof(c[13]));
	if (v->weight >= 0)
		snprintf(wt, sizeof(wt), "%lld", (long long)v->weight);
	else
		snprintf(wt, sizeof(wt), "-");
	snprintf(buf, len, HEADER_FMT, v->name, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
		 c[8], c[9], c[10], c[11], c[12], c[13], wt, v->clamped ? "yes" : "no",
		 v->last[0] ? v->last : "-");
}

static void sort_frame(struct top *t)
{
	qsort_r(t->cur->vms, t->cur->nr, sizeof(t->cur->vms[0]), cmp_vm, t);
}

static void print_batch(struct top *t)
{
	char line[512], when[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	sort_frame(t);
	printf("ebb top - %s, %zu VMs, sorted by %s\n", when, t->cur->nr, sort_names[t->sort]);
	printf("%s\n", t->cur->pool_line);
	if (t->cur->pool_line2[0])
		printf("%s\n", t->cur->pool_line2);
	header(line, sizeof(line));
	printf("%s\n", line);
	for (i = 0; i < t->cur->nr; i++) {
		row(&t->cur->vms[i], line, sizeof(line));
		printf("%s\n", line);
	}
	printf("\n");
	fflush(stdout);
}

static void draw(struct top *t, bool paused)
{
	char line[512];
	int y = 0, rows, cols;
	size_t i;

	getmaxyx(stdscr, rows, cols);
	erase();
	sort_frame(t);
	mvprintw(y++, 0, "ebb top - %zu VMs, sorted by %s%s  [q quit, space pause, n r s w f p sort, "
		 "R reverse]", t->cur->nr, sort_names[t->sort], paused ? " - PAUSED" : "");
	mvaddnstr(y++, 0, t->cur->pool_line, cols);
	if (t->cur->pool_line2[0])
		mvaddnstr(y++, 0, t->cur->pool_line2, cols);
	y++;
	header(line, sizeof(line));
	attron(A_REVERSE);
	mvaddnstr(y++, 0, line, cols);
	attroff(A_REVERSE);
	for (i = 0; i < t->cur->nr && y < rows; i++) {
		row(&t->cur->vms[i], line, sizeof(line));
		mvaddnstr(y++, 0, line, cols);
	}
	refresh();
}

static const char usage_top[] =
	"usage: ebb top [-b] [-n N] [-d SECS] [-s KEY] [-r]\n"
	"\n"
	"The host's live view: the pool (from ebbd, when it runs) and one row per VM:\n"
	"resident, swapped (compressed / file), ballooned, KSM-merged, working set\n"
	"(ebbd), refaults/s, swap-ins/s, PSI some/full %, high, max, min, low, weight,\n"
	"clamped, and the last action ebbd took on the VM and why.  '-': not known\n"
	"(no engine, no ebbd, or the first frame for rates).\n"
	"\n"
	"  -b        batch mode: plain text frames (the default when stdout is not a terminal)\n"
	"  -n N      stop after N frames (default: until q or a signal)\n"
	"  -d SECS   time between frames (default 2, at least 0.1)\n"
	"  -s KEY    sort by n(ame), r(esident), s(wapped), w(orking set), f (refaults/s),\n"
	"            p (psi some); biggest first (default r)\n"
	"  -r        reverse the order\n"
	"\n"
	"Keys: q quit, space pause/resume, n r s w f p sort, R reverse.\n";

static volatile sig_atomic_t top_stop;

static void on_sig(int sig)
{
	(void)sig;
	top_stop = 1;
}

int ebb_top_main(int argc, char **argv)
{
	struct top t = { .sort = SORT_RES };
	bool batch = false;
	long frames = -1, i;
	double delay_s = 2.0;
	int c, ret;

	optind = 1;
	while ((c = getopt(argc, argv, "bn:d:s:rh")) != -1) {
		char *end;

		switch (c) {
		case 'b':
			batch = true;
			break;
		case 'n':
			errno = 0;
			frames = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || frames < 1) {
				fprintf(stderr, "ebb top: -n wants a number of frames >= 1\n");
				return 2;
			}
			break;
		case 'd':
			errno = 0;
			delay_s = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(delay_s >= 0.1) || delay_s > 3600) {
				fprintf(stderr, "ebb top: -d wants seconds from 0.1 to 3600\n");
				return 2;
			}
			break;
		case 's': {
			const char *k = strchr(sort_keys, optarg[0]);

			if (!k || optarg[1] || !optarg[0]) {
				fprintf(stderr, "ebb top: -s is one of n r s w f p\n");
				return 2;
			}
			t.sort = (enum top_sort)(k - sort_keys);
			break;
		}
		case 'r':
			t.reverse = true;
			break;
		case 'h':
			fputs(usage_top, stdout);
			return 0;
		default:
			fputs(usage_top, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "ebb top: unexpected argument \"%s\"\n", argv[optind]);
		return 2;
	}
	ret = vmm_rundir(t.rundir, sizeof(t.rundir), false);
	if (ret) {
		fprintf(stderr, "ebb top: no runtime directory: %s\n", strerror(-ret));
		return 1;
	}
	t.cur = calloc(1, sizeof(*t.cur));
	t.prev = calloc(1, sizeof(*t.prev));
	if (!t.cur || !t.prev) {
		free(t.cur);
		free(t.prev);
		return 1;
	}
	signal(SIGINT, on_sig);
	signal(SIGTERM, on_sig);
	signal(SIGPIPE, SIG_IGN);
	if (!batch && !(isatty(STDOUT_FILENO) && isatty(STDIN_FILENO)))
		batch = true;   /* no terminal: frames as text */
	if (batch) {
		for (i = 0; !top_stop && (frames < 0 || i < frames); i++) {
			if (i) {
				struct timespec ts = { (time_t)delay_s,
						       (long)((delay_s - floor(delay_s)) * 1e9) };

				nanosleep(&ts, NULL);
			}
			observe(&t);
			print_batch(&t);
		}
	} else {
		bool paused = false;
		uint64_t next = 0;

		initscr();
		cbreak();
		noecho();
		keypad(stdscr, TRUE);
		curs_set(0);
		timeout(100);
		for (i = 0; !top_stop && (frames < 0 || i < frames);) {
			int k;

			if (!paused && mono_ns() >= next) {
				observe(&t);
				next = mono_ns() + (uint64_t)(delay_s * 1e9);
				i++;
				draw(&t, paused);
			}
			k = getch();
			if (k == 'q' || k == 'Q')
				break;
			if (k == ' ') {
				paused = !paused;
				draw(&t, paused);
			} else if (k == 'R') {
				t.reverse = !t.reverse;
				draw(&t, paused);
			} else if (k > 0 && k < 256 && strchr(sort_keys, k)) {
				t.sort = (enum top_sort)(strchr(sort_keys, k) - sort_keys);
				draw(&t, paused);
			} else if (k == KEY_RESIZE) {
				draw(&t, paused);
			}
		}
		endwin();
	}
	free(t.cur);
	free(t.prev);
	return 0;
}
