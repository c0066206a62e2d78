/*
 * vmm/bin/ebb.c — the `ebb` command: run a VM, list running VMs, show one,
 * stop one.  Only option parsing, terminal handling and printing live here;
 * everything worth testing is in the vmm library (size parsing, boot,
 * control protocol, the VM itself).
 *
 *   ebb run --kernel PATH [--initrd PATH] [--cmdline STR] --mem SIZE --cpus N
 *           [--name NAME] [--detach [--log-max SIZE]] [--ready-marker STR]
 *   ebb ls | ebb stat NAME [--json] | ebb stop NAME | ebb version | ebb --help
 *   ebb balloon NAME SIZE|PERCENT% | ebb balloon NAME [--stats] [--json]
 *   ebb set NAME [high=SIZE|N%] [max=SIZE|N%] [swappiness=N]
 *   ebb bench density ... (bench_density.c)
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl.h"
#include "client/discover.h"
#include "client/report.h"
#include "vmm/bin/bench_density.h"
#include "vmm/bin/ebb_top.h"
#include "vmm/bin/run_opts.h"
#include "vmm/logcap.h"
#include "vmm/memory.h"
#include "client/rundir.h"
#include "client/size.h"
#include "vmm/version.h"
#include "vmm/vm.h"

#define CALL_TIMEOUT_MS 5000

static bool raw_mode;
static struct termios saved_termios;
static int verbose;

static const char *nl(void)
{
	return raw_mode ? "\r\n" : "\n";
}

static void restore_terminal(void)
{
	if (raw_mode) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_termios);
		raw_mode = false;
	}
}

static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...)
{
	va_list ap;

	restore_terminal();
	fputs("ebb: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void log_cb(void *opaque, enum ebb_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };

	if (level == EBB_LOG_DEBUG && verbose < 2)
		return;
	if (level == EBB_LOG_INFO && verbose < 1)
		return;
	fprintf(stderr, "ebb: %s: %s%s", names[level], msg, nl());
}

/* The runtime directory, created (run) or only checked (clients). */
static void rundir_or_die(char *buf, size_t len, bool create)
{
	int ret = vmm_rundir(buf, len, create);

	if (ret && vmm_rundir_strerror(ret))
		die("refusing the runtime directory %s: %s", buf, vmm_rundir_strerror(ret));
	if (ret)
		die("cannot %s the runtime directory %s: %s (set EBB_RUNTIME_DIR)",
		    create ? "create" : "open", buf, strerror(-ret));
}

/* ---- help ------------------------------------------------------------------- */

static const char usage_main[] =
	"usage: ebb COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  run       boot a Linux VM (one ebb process per VM)\n"
	"  ls        list running VMs\n"
	"  stat      show one VM\n"
	"  stop      stop a VM\n"
	"  balloon   set a VM's balloon (its usable memory) or show it\n"
	"  set       change a VM's memory limits (high, max), swappiness and pool settings\n"
	"  pool      show ebbd's memory pool, its VMs and its last decisions\n"
	"  top       live view of the pool and every VM (ncurses; -b for text)\n"
	"  bench     benchmarks: 'ebb bench density' (VMs per host at an SLO, per policy)\n"
	"  version   print the version\n"
	"\n"
	"Run 'ebb COMMAND --help' for a command's options.\n"
	"VMs are found through their control sockets in $EBB_RUNTIME_DIR,\n"
	"$XDG_RUNTIME_DIR/ebb or /run/ebb.\n";

static const char usage_run[] =
	"usage: ebb run --kernel PATH [--initrd PATH] [--cmdline STR] --mem SIZE --cpus N\n"
	"               [--name NAME] [--detach] [--ready-marker STR] [--thp on|off] [-v]\n"
	"\n"
	"Boots a Linux bzImage in a new KVM VM.  Its serial console (COM1) is this\n"
	"terminal (raw mode; type Ctrl-A x to stop the VM).  The VM ends when the\n"
	"guest powers off or reboots; ebb then exits 0.  A guest kernel panic exits 3,\n"
	"a crashed guest 4, a host-side error 1.\n"
	"\n"
	"  -k, --kernel PATH     x86-64 bzImage (e.g. /boot/vmlinuz-*)\n"
	"  -i, --initrd PATH     initramfs\n"
	"  -c, --cmdline STR     appended to the default kernel command line:\n"
	"                        \"" VMM_DEFAULT_CMDLINE "\"\n"
	"  -m, --mem SIZE        guest RAM: 512M, 2G, 1536MiB (a bare number is MiB)\n"
	"  -p, --cpus N          number of vCPUs (default 1)\n"
	"  -n, --name NAME       name for ebb ls/stat/stop (default vm-PID)\n"
	"  -d, --detach          run in the background; console to RUNDIR/NAME.log\n"
	"      --log-max SIZE    --detach: cap NAME.log at SIZE, older output rotates to\n"
	"                        NAME.log.1 (default 1M; at least 4K)\n"
	"      --ready-marker S  time the first console line containing S (ebb stat)\n"
	"      --thp on|off      back guest RAM with transparent huge pages (default on;\n"
	"                        only with --reclaim off: the engine pages 4 KiB)\n"
	"      --virtio on|off   virtio console (hvc0, agent port) and balloon (default on)\n"
	"      --balloon-oom on|off  let the guest deflate the balloon when it runs out of\n"
	"                        memory (VIRTIO_BALLOON_F_DEFLATE_ON_OOM; default off)\n"
	"      --free-page-reporting on|off  the guest reports free pages, the host drops\n"
	"                        them (default on)\n"
	"      --reclaim on|off  guest RAM managed by ebb's reclaim engine (default: on\n"
	"                        where the host allows it, else a warning; on = required);\n"
	"                        docs/memory.md\n"
	"      --mem-high SIZE|N%  background reclaim above this resident size\n"
	"      --mem-max SIZE|N%   hard limit on resident guest RAM\n"
	"      --swappiness N    0..200 (default 60)\n"
	"      --swap-dir DIR    swap file directory (default /var/tmp, else the run dir)\n"
	"      --fault-around N  a write to empty RAM (never touched, given back) installs\n"
	"                        its aligned block of N pages (power of two, 1 = off, at\n"
	"                        most 64; default 16)\n"
	"      --swap-compress lz4|zstd|none  compressed in-memory tier (default lz4)\n"
	"      --swap-encrypt on|off  encrypt the swap file with a key that exists only in\n"
	"                        this VMM's memory (default on)\n"
	"      --ksm on|off      advise guest RAM MADV_MERGEABLE (default off)\n"
	"      --dirty-log on|off  age pages from the KVM dirty log (default on)\n"
	"  -v, --verbose         more messages (twice: debug)\n";

static const char usage_ls[] =
	"usage: ebb ls\n\nLists running VMs: name, pid, state, vCPUs, memory, uptime.\n";
static const char usage_stat[] =
	"usage: ebb stat NAME [--json] [--watch[=SECS]] [--count=N]\n"
	"\n"
	"Shows what a running VM reports over its control socket.  --watch shows it\n"
	"again every SECS seconds (default 2) until interrupted, or N times.\n";
static const char usage_balloon[] =
	"usage: ebb balloon NAME SIZE|PERCENT% [--wait[=SECS]]\n"
	"       ebb balloon NAME [--stats] [--json]\n"
	"\n"
	"Sets the memory the guest may use to SIZE (512M, 1G; a bare number is MiB) or\n"
	"to PERCENT% of its RAM: the balloon takes the rest and its pages go back to\n"
	"the host.  100% empties the balloon.  Without a size, shows the balloon:\n"
	"target, actual, and (--stats) the guest's last memory statistics.\n"
	"--wait: show progress once a second until the guest's driver has the balloon\n"
	"at its target (exit 0), or say why not: no driver, the guest took pages back\n"
	"on OOM, the guest has no more available memory, no progress for 10 s, or\n"
	"SECS (default 120) ran out (exit 1).\n";
static const char usage_stop[] =
	"usage: ebb stop NAME\n\nAsks a VM to stop and waits (up to 10 s) until it has.\n";

static bool want_help(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

/* ---- run -------------------------------------------------------------------- */

struct run_ctx {
	int ready_fd;      /* --detach: pipe to the parent */
};

static void on_running(void *opaque)
{
	struct run_ctx *ctx = opaque;

	if (ctx->ready_fd >= 0) {
		if (write(ctx->ready_fd, "OK", 2) < 0) {
			/* parent gone: nothing to tell */
		}
		close(ctx->ready_fd);
		ctx->ready_fd = -1;
	}
}

static int exit_status(const struct vmm_vm_exit *e)
{
	switch (e->reason) {
	case VMM_EXIT_POWEROFF:
	case VMM_EXIT_REBOOT:
	case VMM_EXIT_STOPPED:
		return 0;
	case VMM_EXIT_PANIC:
		return 3;
	case VMM_EXIT_CRASH:
		return 4;
	default:
		return 1;
	}
}

/*
 * A fatal signal (a bug, or SIGBUS on guest RAM the kernel poisoned) must not
 * end a VM without a word: say which, where and in which thread, then die of
 * it as before (SA_RESETHAND; the exit status still shows the signal).  Only
 * async-signal-safe calls.
 */
static char fatal_name[64];
/* The VM whose vCPUs may take a SIGBUS for lost guest RAM (vmm_vm_on_sigbus). */
static struct vmm_vm *volatile sigbus_vm;

static size_t fmt_u64(char *buf, uint64_t v, unsigned base)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

static void fatal_handler(int sig, siginfo_t *si, void *uc)
{
	char msg[256];
	size_t n = 0;
	const char *name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" :
			   sig == SIGFPE ? "SIGFPE" : sig == SIGILL ? "SIGILL" : "SIGABRT";

	(void)uc;
	if (sig == SIGBUS && sigbus_vm && vmm_vm_on_sigbus(sigbus_vm, si))
		return;  /* a machine check for the guest, not our death */
#define PUT(str) do { for (const char *s_ = (str); *s_ && n < sizeof(msg) - 2; s_++) msg[n++] = *s_; } while (0)
	PUT("ebb: VM ");
	PUT(fatal_name);
	PUT(": fatal ");
	PUT(name);
	PUT(" (code ");
	n += fmt_u64(msg + n, (uint64_t)(unsigned)si->si_code, 10);
	PUT(") at address 0x");
	n += fmt_u64(msg + n, (uint64_t)(uintptr_t)si->si_addr, 16);
	PUT(" in thread ");
	n += fmt_u64(msg + n, (uint64_t)gettid(), 10);
	PUT("\n");
#undef PUT
	if (write(STDERR_FILENO, msg, n) < 0) {
		/* nothing left to tell */
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_fatal_signals(const char *name)
{
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT };
	struct sigaction sa;

	snprintf(fatal_name, sizeof(fatal_name), "%s", name);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = fatal_handler;
	/* No SA_RESETHAND: SIGBUS may be survivable (vmm_vm_on_sigbus); the
	 * handler restores the default itself before it re-raises. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/*
 * --detach: stdout and stderr (the guest console and our log lines) go into
 * a pipe that a child process copies into NAME.log within log_max_bytes
 * (rotating to NAME.log.1, see vmm/logcap.h).  A child rather than a thread
 * so that the last words of a crash (fatal_handler) still reach the file:
 * the writer runs until the last writer of the pipe is gone.
 */
static void start_log_writer(const char *log_path, uint64_t log_max_bytes)
{
	int pfd[2], fd;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	/* Fail here, in front of the user, if the file cannot be made. */
	fd = vmm_logcap_open(log_path);
	if (fd < 0)
		die("cannot create %s: %s", log_path, strerror(-fd));
	close(fd);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int ret;

		/* Keep only the pipe's read end: in particular not the start-up
		 * pipe, whose EOF the user's shell waits for. */
		if (dup2(pfd[0], STDIN_FILENO) < 0)
			_exit(1);
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (close_range(3, ~0u, 0) < 0) {
			for (fd = 3; fd < 1024; fd++)
				close(fd);
		}
		signal(SIGINT, SIG_IGN);
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		ret = vmm_logcap_copy(STDIN_FILENO, log_path, log_max_bytes, NULL);
		_exit(ret ? 1 : 0);
	}
	if (dup2(pfd[1], STDOUT_FILENO) < 0 || dup2(pfd[1], STDERR_FILENO) < 0)
		die("dup2: %s", strerror(errno));
	close(pfd[0]);
	close(pfd[1]);
	setvbuf(stdout, NULL, _IONBF, 0);
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, 'k' },
		{ "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "mem", required_argument, NULL, 'm' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "name", required_argument, NULL, 'n' },
		{ "detach", no_argument, NULL, 'd' },
		{ "ready-marker", required_argument, NULL, 'R' },
		{ "thp", required_argument, NULL, 'T' },
		{ "virtio", required_argument, NULL, 'V' },
		{ "balloon-oom", required_argument, NULL, 'O' },
		{ "free-page-reporting", required_argument, NULL, 'F' },
		{ "reclaim", required_argument, NULL, 'M' },
		{ "mem-high", required_argument, NULL, 'M' },
		{ "mem-max", required_argument, NULL, 'M' },
		{ "swappiness", required_argument, NULL, 'M' },
		{ "swap-dir", required_argument, NULL, 'M' },
		{ "fault-around", required_argument, NULL, 'M' },
		{ "swap-compress", required_argument, NULL, 'M' },
		{ "swap-encrypt", required_argument, NULL, 'M' },
		{ "ksm", required_argument, NULL, 'M' },
		{ "dirty-log", required_argument, NULL, 'M' },
		{ "log-max", required_argument, NULL, 'L' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t log_max_bytes = VMM_LOGCAP_DEFAULT_MAX_BYTES;
	struct vmm_vm_cfg cfg = {
		.nr_cpus = 1, .console_in_fd = STDIN_FILENO, .console_out_fd = STDOUT_FILENO,
		.handle_signals = true, .thp = true, .log = { .fn = log_cb },
		.memory = { .swappiness = -1 },
	};
	struct run_ctx ctx = { .ready_fd = -1 };
	char rundir[256], name[VMM_NAME_MAX_BYTES + 1], err[512], size_buf[32];
	struct vmm_vm_exit vexit;
	struct vmm_vm *vm;
	bool detach = false, have_mem = false;
	int c, ret, status, li;

	while ((c = getopt_long(argc, argv, "k:i:c:m:p:n:dvh", opts, &li)) != -1) {
		switch (c) {
		case 'k': cfg.kernel_path = optarg; break;
		case 'i': cfg.initrd_path = optarg; break;
		case 'c': cfg.cmdline = optarg; break;
		case 'm':
			ret = vmm_parse_size(optarg, 1ull << 20, &cfg.mem_bytes);
			if (ret)
				die("bad --mem '%s': %s; write it like 512M, 2G or 1536MiB", optarg,
				    ret == -ERANGE ? "too large" : "not a size");
			have_mem = true;
			break;
		case 'p': {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || n == 0 || n > 1024 || optarg[0] == '-')
				die("bad --cpus '%s': give a number from 1 to %d", optarg, VMM_MAX_CPUS);
			cfg.nr_cpus = (unsigned)n;
			break;
		}
		case 'n': cfg.name = optarg; break;
		case 'd': detach = true; break;
		case 'L':
			ret = vmm_parse_size(optarg, 1, &log_max_bytes);
			if (ret || log_max_bytes < VMM_LOGCAP_MIN_MAX_BYTES)
				die("bad --log-max '%s': give a size of at least 4K, like 1M", optarg);
			break;
		case 'R': cfg.ready_marker = optarg; break;
		case 'T':
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
				die("bad --thp '%s': give on or off", optarg);
			cfg.thp = !strcmp(optarg, "on");
			break;
		case 'V':
		case 'O':
		case 'F':
			if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
				die("bad --%s '%s': give on or off", c == 'V' ? "virtio" :
				    c == 'O' ? "balloon-oom" : "free-page-reporting", optarg);
			if (c == 'V')
				cfg.virtio.disable = !strcmp(optarg, "off");
			else if (c == 'O')
				cfg.virtio.balloon_deflate_on_oom = !strcmp(optarg, "on");
			else
				cfg.virtio.balloon_no_reporting = !strcmp(optarg, "off");
			break;
		case 'M':
			if (ebb_memory_opt(&cfg.memory, opts[li].name, optarg, err, sizeof(err)))
				die("%s", err);
			break;
		case 'v': verbose++; break;
		case 'h': fputs(usage_run, stdout); return 0;
		default: fputs(usage_run, stderr); return 2;
		}
	}
	if (optind != argc)
		die("unexpected argument '%s' (see ebb run --help)", argv[optind]);
	if (!cfg.kernel_path)
		die("no kernel: give --kernel PATH to a bzImage (see ebb run --help)");
	if (!have_mem)
		die("no memory size: give --mem SIZE, e.g. --mem 512M");
	if (cfg.mem_bytes < VMM_MIN_MEM_BYTES || cfg.mem_bytes > VMM_MAX_MEM_BYTES ||
	    cfg.mem_bytes % 4096)
		die("--mem %s is out of range: give a multiple of 4 KiB from 32M to 1T",
		    vmm_format_size(cfg.mem_bytes, size_buf, sizeof(size_buf)));
	if (cfg.nr_cpus > VMM_MAX_CPUS)
		die("too many vCPUs (%u): ebb supports at most %d", cfg.nr_cpus, VMM_MAX_CPUS);
	if (!cfg.name) {
		snprintf(name, sizeof(name), "vm-%d", (int)getpid());
		cfg.name = name;
	}
	if (!strcmp(cfg.name, EBB_DISCOVER_RESERVED_NAME))
		die("the name \"%s\" is ebbd's (its socket is in the same directory): pick another",
		    cfg.name);
	if (!vmm_name_valid(cfg.name))
		die("bad --name '%s': use 1-%d characters from A-Z a-z 0-9 _ . - "
		    "(not starting with . or -)", cfg.name, VMM_NAME_MAX_BYTES);
	rundir_or_die(rundir, sizeof(rundir), true);
	cfg.rundir = rundir;
	{
		const char *hooks = getenv("EBB_TEST_HOOKS");

		cfg.test_hooks = hooks && !strcmp(hooks, "1");
	}
	cfg.on_running = on_running;
	cfg.opaque = &ctx;

	if (detach) {
		char log_path[512], buf[600];
		int pipefd[2], fd;
		pid_t pid;
		ssize_t n, len = 0;

		if (pipe2(pipefd, O_CLOEXEC) < 0)
			die("pipe: %s", strerror(errno));
		pid = fork();
		if (pid < 0)
			die("fork: %s", strerror(errno));
		if (pid > 0) {
			close(pipefd[1]);
			while ((n = read(pipefd[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
				len += n;
			buf[len] = '\0';
			if (len >= 2 && !strncmp(buf, "OK", 2)) {
				printf("%s\n", cfg.name);
				return 0;
			}
			waitpid(pid, &status, 0);
			fprintf(stderr, "ebb: %s\n", len ? buf : "the VM process died while starting");
			return 1;
		}
		close(pipefd[0]);
		ctx.ready_fd = pipefd[1];
		setsid();
		n = snprintf(log_path, sizeof(log_path), "%s/%s.log", rundir, cfg.name);
		if (n < 0 || (size_t)n >= sizeof(log_path))
			die("runtime directory path too long for %s.log", cfg.name);
		fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		start_log_writer(log_path, log_max_bytes);
		cfg.console_in_fd = -1;
	}

	catch_fatal_signals(cfg.name);
	ret = vmm_vm_create(&cfg, &vm, err, sizeof(err));
	if (ret) {
		if (ctx.ready_fd >= 0) {
			if (write(ctx.ready_fd, err, strlen(err)) < 0) {
				/* parent gone */
			}
		}
		die("%s", err);
	}
	if (!detach && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_termios) == 0) {
		struct termios t = saved_termios;

		cfmakeraw(&t);
		if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
			raw_mode = true;
			atexit(restore_terminal);
			fprintf(stderr, "ebb: VM %s: console attached; Ctrl-A x stops the VM%s",
				cfg.name, nl());
		}
	}
	sigbus_vm = vm;
	ret = vmm_vm_run(vm, &vexit);
	sigbus_vm = NULL;
	vmm_vm_destroy(vm);
	restore_terminal();
	if (ret)
		die("running the VM failed: %s", strerror(-ret));
	status = exit_status(&vexit);
	fprintf(stderr, "ebb: VM %s: %s (%s)\n", cfg.name, vexit.message,
		vmm_exit_reason_name(vexit.reason));
	return status;
}

/* ---- ls / stat / stop ------------------------------------------------------------ */

static int call(const char *rundir, const char *name, const char *cmd,
		struct vmm_ctl_response *resp)
{
	int fd = vmm_ctl_connect(rundir, name), ret;

	if (fd < 0)
		return fd;
	ret = vmm_ctl_call(fd, cmd, NULL, CALL_TIMEOUT_MS, resp);
	close(fd);
	return ret;
}

static int64_t get_int(struct json_object *o, const char *key, int64_t dflt)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return json_object_get_int64(v);
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "?";
	return json_object_get_string(v);
}

/* Prints an object's text (vmm_vm_query_format, vmm_memory_format). */
static void print_report(int (*format)(struct json_object *q, char *buf, size_t len),
			 struct json_object *q)
{
	int n = format(q, NULL, 0);
	char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;

	if (buf && format(q, buf, (size_t)n + 1) == n)
		fputs(buf, stdout);
	free(buf);
}

struct ls_ctx {
	const char *rundir;
	int nr_shown;
};

static void ls_one(void *opaque, const char *name)
{
	struct ls_ctx *ctx = opaque;
	struct vmm_ctl_response resp;
	char mem[32], up[32];
	int ret;

	if (!strcmp(name, EBB_DISCOVER_RESERVED_NAME))
		return;  /* ebbd's socket, not a VM (ebb pool) */
	ret = call(ctx->rundir, name, "query", &resp);
	if (ret == -ECONNREFUSED || ret == -ENOENT)
		return;  /* stale socket of a VMM that died */
	if (ctx->nr_shown++ == 0)
		printf("%-20s %8s %-9s %5s %10s %9s\n", "NAME", "PID", "STATE", "VCPUS", "MEMORY",
		       "UPTIME");
	if (ret || !resp.ok) {
		printf("%-20s %8s %-9s %5s %10s %9s\n", name, "?", ret ? "no-answer" : "error", "?",
		       "?", "?");
		if (!ret)
			vmm_ctl_response_release(&resp);
		return;
	}
	printf("%-20s %8lld %-9s %5lld %10s %9s\n", name, (long long)get_int(resp.result, "pid", -1),
	       get_str(resp.result, "state"), (long long)get_int(resp.result, "vcpus", -1),
	       vmm_format_size((uint64_t)get_int(resp.result, "mem_bytes", 0), mem, sizeof(mem)),
	       vmm_format_ms(get_int(resp.result, "uptime_ms", -1), up, sizeof(up)));
	vmm_ctl_response_release(&resp);
}

static const char *mib_str(int64_t bytes, char *buf, size_t len)
{
	if (bytes < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%lldM", (long long)(bytes >> 20));
	return buf;
}

/* One line about ebbd's pool when ebbd runs; false when it does not. */
static bool pool_line(const char *rundir)
{
	struct vmm_ctl_response resp;
	struct json_object *r;
	char b[6][24];

	if (call(rundir, EBB_DISCOVER_RESERVED_NAME, "pool", &resp))
		return false;
	if (!resp.ok) {
		vmm_ctl_response_release(&resp);
		return false;
	}
	r = resp.result;
	printf("pool: ebbd policy %s, %s; budget %s used %s free %s (watermarks min %s low %s "
	       "high %s), %lld VMs\n", get_str(r, "policy"), get_str(r, "state"),
	       mib_str(get_int(r, "budget_bytes", -1), b[0], sizeof(b[0])),
	       mib_str(get_int(r, "used_bytes", -1), b[1], sizeof(b[1])),
	       mib_str(get_int(r, "free_bytes", -1), b[2], sizeof(b[2])),
	       mib_str(get_int(r, "wmark_min_bytes", -1), b[3], sizeof(b[3])),
	       mib_str(get_int(r, "wmark_low_bytes", -1), b[4], sizeof(b[4])),
	       mib_str(get_int(r, "wmark_high_bytes", -1), b[5], sizeof(b[5])),
	       (long long)get_int(r, "nr_vms", 0));
	vmm_ctl_response_release(&resp);
	return true;
}

static void print_vms(struct json_object *arr)
{
	char b[4][24];
	size_t i, n;

	n = json_object_array_length(arr);
	printf("%-16s %9s %9s %9s %9s %7s %6s %8s\n", "VM", "RESIDENT", "HIGH", "MAX",
	       "BALLOON", "CLAMPED", "WEIGHT", "AGENT");
	for (i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(arr, i), *x;
		bool cl = json_object_object_get_ex(v, "clamped", &x) && json_object_get_boolean(x);
		bool ag = json_object_object_get_ex(v, "agent", &x) && json_object_get_boolean(x);

		printf("%-16s %9s %9s %9s %9s %7s %6lld %8s\n", get_str(v, "name"),
		       mib_str(get_int(v, "resident_bytes", -1), b[0], sizeof(b[0])),
		       mib_str(get_int(v, "high_bytes", -1), b[1], sizeof(b[1])),
		       mib_str(get_int(v, "max_bytes", -1), b[2], sizeof(b[2])),
		       mib_str(get_int(v, "balloon_actual_bytes", -1), b[3], sizeof(b[3])),
		       cl ? "yes" : "no", (long long)get_int(v, "weight", -1), ag ? "yes" : "no");
	}
}

static const char usage_pool[] =
	"usage: ebb pool [--trace N]\n"
	"\n"
	"Shows ebbd's memory pool (budget, use, watermarks, state), each VM it\n"
	"manages and its last N decisions (default 10) with their reasons.\n";

static int cmd_pool(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	struct json_object *arr, *args;
	char rundir[256];
	long last = 10;
	size_t i, n;
	int fd;

	if (want_help(argc, argv)) {
		fputs(usage_pool, stdout);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--trace"))
		last = strtol(argv[2], NULL, 10);
	else if (argc > 1)
		die("usage: ebb pool [--trace N]");
	rundir_or_die(rundir, sizeof(rundir), false);
	if (!pool_line(rundir))
		die("ebbd is not running (no answer on %s/%s.sock)", rundir,
		    EBB_DISCOVER_RESERVED_NAME);
	if (!call(rundir, EBB_DISCOVER_RESERVED_NAME, "vms", &resp)) {
		if (resp.ok && json_object_object_get_ex(resp.result, "vms", &arr))
			print_vms(arr);
		vmm_ctl_response_release(&resp);
	}
	if (last <= 0)
		return 0;
	fd = vmm_ctl_connect(rundir, EBB_DISCOVER_RESERVED_NAME);
	args = json_object_new_object();
	if (fd < 0 || !args)
		return 1;
	json_object_object_add(args, "last", json_object_new_int64(last));
	if (!vmm_ctl_call(fd, "trace", args, CALL_TIMEOUT_MS, &resp)) {
		if (resp.ok && json_object_object_get_ex(resp.result, "trace", &arr)) {
			n = json_object_array_length(arr);
			printf("last %zu decisions:\n", n);
			for (i = 0; i < n; i++)
				printf("  %s\n", get_str(json_object_array_get_idx(arr, i), "line"));
		}
		vmm_ctl_response_release(&resp);
	}
	close(fd);
	return 0;
}

static int cmd_ls(int argc, char **argv)
{
	struct ls_ctx ctx = { 0 };
	char rundir[256];
	int ret;

	if (want_help(argc, argv)) {
		fputs(usage_ls, stdout);
		return 0;
	}
	if (argc > 1)
		die("ebb ls takes no arguments");
	rundir_or_die(rundir, sizeof(rundir), false);
	ctx.rundir = rundir;
	ret = vmm_list_names(rundir, ls_one, &ctx);
	if (ret < 0)
		die("cannot read %s: %s", rundir, strerror(-ret));
	if (ctx.nr_shown == 0)
		printf("no VMs running (runtime directory %s)\n", rundir);
	pool_line(rundir);
	return 0;
}

static void name_error(const char *name, int ret)
{
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		die("no VM named \"%s\" is running (see ebb ls)", name);
	if (ret == -EINVAL)
		die("bad VM name \"%s\"", name);
	if (ret == -EPERM)
		die("VM %s: its socket is served by a process of another user: refusing to talk "
		    "to it (check who can write to the runtime directory)", name);
	die("VM %s: %s", name, strerror(-ret));
}

/*
 * One control call to VM @name from a subcommand: run dir, connect, call.
 * A VM that is not there ends the program with name_error(); a refusal is
 * printed and false returned (resp released); true: resp is the caller's.
 */
static bool call_vm_ms(const char *name, const char *cmd, struct json_object *args,
		       int timeout_ms, struct vmm_ctl_response *resp)
{
	char rundir[256];
	int ret, fd;

	rundir_or_die(rundir, sizeof(rundir), false);
	fd = vmm_ctl_connect(rundir, name);
	if (fd < 0)
		name_error(name, fd);
	ret = vmm_ctl_call(fd, cmd, args, timeout_ms, resp);
	close(fd);
	if (ret)
		name_error(name, ret);
	if (!resp->ok) {
		fprintf(stderr, "ebb: %s: %s\n", resp->error_code, resp->error_message);
		vmm_ctl_response_release(resp);
		return false;
	}
	return true;
}

static bool call_vm(const char *name, const char *cmd, struct json_object *args,
		    struct vmm_ctl_response *resp)
{
	return call_vm_ms(name, cmd, args, CALL_TIMEOUT_MS, resp);
}

/* The balloon part of a query (or the result of balloon). */
static void print_balloon(struct json_object *r, bool stats)
{
	struct json_object *b = r, *st, *v;
	char s1[32], s2[32], s3[32], age[32];
	int64_t mem, target, actual;
	bool driver_ok;

	if (json_object_object_get_ex(r, "name", NULL) &&  /* a query result */
	    !json_object_object_get_ex(r, "balloon", &b))
		return;
	if (!b || !json_object_is_type(b, json_type_object))
		return;
	driver_ok = json_object_object_get_ex(b, "driver_ok", &v) && json_object_get_boolean(v);
	mem = get_int(b, "mem_bytes", 0);
	target = get_int(b, "target_pages", 0);
	actual = get_int(b, "actual_pages", 0);
	printf("balloon:    target %s (guest %s), actual %s%s\n",
	       vmm_format_size((uint64_t)target * 4096, s1, sizeof(s1)),
	       vmm_format_size((uint64_t)(mem - target * 4096 > 0 ? mem - target * 4096 : 0), s2,
			       sizeof(s2)),
	       vmm_format_size((uint64_t)actual * 4096, s3, sizeof(s3)),
	       driver_ok ? "" : " (no guest driver)");
	printf("            inflated %lld, deflated %lld (oom %lld), reported %lld pages; "
	       "%lld pages discarded in %lld madvise calls\n",
	       (long long)get_int(b, "inflated_pages", 0), (long long)get_int(b, "deflated_pages", 0),
	       (long long)get_int(b, "oom_deflated_pages", 0),
	       (long long)get_int(b, "reported_pages", 0), (long long)get_int(b, "discarded_pages", 0),
	       (long long)get_int(b, "madvise_calls", 0));
	printf("            guest stats: %s old\n",
	       get_int(b, "stats_age_ms", -1) < 0 ? "none yet," :
	       vmm_format_ms(get_int(b, "stats_age_ms", -1), age, sizeof(age)));
	if (stats && json_object_object_get_ex(b, "stats", &st) && st) {
		json_object_object_foreach(st, key, val) {
			if (strstr(key, "memory") || strstr(key, "caches"))
				printf("            %-20s %s\n", key,
				       vmm_format_size((uint64_t)json_object_get_int64(val), s1,
						       sizeof(s1)));
			else
				printf("            %-20s %lld\n", key,
				       (long long)json_object_get_int64(val));
		}
	}
}

static void sleep_s(double s);
static double seconds_arg(const char *arg, const char *val);

/* The balloon object of a `balloon` answer (it may sit under "balloon"). */
static struct json_object *balloon_of(struct json_object *r)
{
	struct json_object *b;

	if (r && json_object_object_get_ex(r, "balloon", &b) && json_object_is_type(b, json_type_object))
		return b;
	return r;
}

/*
 * `ebb balloon --wait`: polls the balloon until the guest's driver reports
 * it at its target, printing progress once a second.  Says why it stops:
 * reached; stalled for 10 s (no driver, deflated on OOM, the guest has less
 * available than the balloon still wants, or the driver does not move);
 * out of time.  0 when reached.
 */
static int wait_balloon(const char *name, double timeout_s)
{
	struct vmm_ctl_response resp;
	uint64_t t0 = vmm_now_ns(), now, moved = t0, printed = 0;
	int64_t best = INT64_MAX, oom0 = -1;
	char s1[32], s2[32], s3[32];

	for (;;) {
		struct json_object *b, *st, *v;
		int64_t mem, target, actual, oom, avail = -1, gap;
		bool driver_ok;

		if (!call_vm(name, "balloon", NULL, &resp))
			return 1;
		now = vmm_now_ns();
		b = balloon_of(resp.result);
		driver_ok = json_object_object_get_ex(b, "driver_ok", &v) && json_object_get_boolean(v);
		mem = get_int(b, "mem_bytes", 0);
		target = get_int(b, "target_pages", 0) * 4096;
		actual = get_int(b, "actual_pages", 0) * 4096;
		oom = get_int(b, "oom_deflated_pages", 0);
		if (json_object_object_get_ex(b, "stats", &st) && st)
			avail = get_int(st, "available_memory", -1);
		vmm_ctl_response_release(&resp);
		if (oom0 < 0)
			oom0 = oom;
		gap = target > actual ? target - actual : actual - target;
		if (gap == 0) {
			printf("%s: reached: balloon %s, the guest has %s, after %.1f s\n", name,
			       vmm_format_size((uint64_t)actual, s1, sizeof(s1)),
			       vmm_format_size((uint64_t)(mem > actual ? mem - actual : 0), s2, sizeof(s2)),
			       (double)(now - t0) / 1e9);
			return 0;
		}
		if (gap < best - (256 << 10)) {
			best = gap;
			moved = now;
		}
		if (now - moved > 10000000000ull) {
			printf("%s: stalled: balloon %s, target %s, no progress for 10 s: ", name,
			       vmm_format_size((uint64_t)actual, s1, sizeof(s1)),
			       vmm_format_size((uint64_t)target, s2, sizeof(s2)));
			if (!driver_ok)
				printf("the guest has no balloon driver up (not loaded yet, or none)\n");
			else if (oom > oom0)
				printf("the guest took %s back on OOM (deflate-on-oom): it needs that memory\n",
				       vmm_format_size((uint64_t)(oom - oom0) * 4096, s3, sizeof(s3)));
			else if (target > actual && avail >= 0 && avail < gap)
				printf("the guest has only %s available, less than the %s still to give\n",
				       vmm_format_size((uint64_t)avail, s3, sizeof(s3)),
				       vmm_format_size((uint64_t)gap, s1, sizeof(s1)));
			else
				printf("the guest's driver is not %s pages (see ebb balloon %s --stats)\n",
				       target > actual ? "giving" : "taking back", name);
			return 1;
		}
		if ((double)(now - t0) / 1e9 > timeout_s) {
			printf("%s: gave up after %.0f s: balloon %s, target %s\n", name, timeout_s,
			       vmm_format_size((uint64_t)actual, s1, sizeof(s1)),
			       vmm_format_size((uint64_t)target, s2, sizeof(s2)));
			return 1;
		}
		if (now - printed >= 1000000000ull) {
			printf("%s: balloon %s, target %s, %s to go\n", name,
			       vmm_format_size((uint64_t)actual, s1, sizeof(s1)),
			       vmm_format_size((uint64_t)target, s2, sizeof(s2)),
			       vmm_format_size((uint64_t)gap, s3, sizeof(s3)));
			fflush(stdout);
			printed = now;
		}
		sleep_s(0.25);
	}
}

static int cmd_balloon(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	struct json_object *args = NULL;
	const char *name = NULL, *size = NULL;
	bool json = false, stats = false;
	double wait_s = 0;
	int i, ret;

	if (want_help(argc, argv)) {
		fputs(usage_balloon, stdout);
		return 0;
	}
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--stats"))
			stats = true;
		else if (!strcmp(argv[i], "--wait"))
			wait_s = 120;
		else if (!strncmp(argv[i], "--wait=", 7))
			wait_s = seconds_arg(argv[i], argv[i] + 7);
		else if (!name)
			name = argv[i];
		else if (!size)
			size = argv[i];
		else
			die("too many arguments (see ebb balloon --help)");
	}
	if (!name)
		die("which VM? usage: ebb balloon NAME SIZE|PERCENT%% (ebb ls lists them)");
	if (wait_s > 0 && !size)
		die("--wait needs a size: ebb balloon NAME SIZE|PERCENT%% --wait");
	if (size) {
		size_t len = strlen(size);
		uint64_t v;

		args = json_object_new_object();
		if (!args)
			die("out of memory");
		if (len > 1 && size[len - 1] == '%') {
			char *end;
			unsigned long p;

			errno = 0;
			p = strtoul(size, &end, 10);
			if (errno || end != size + len - 1 || size[0] < '0' || size[0] > '9' || p > 100)
				die("bad percentage '%s': give 0%% to 100%% of the guest's RAM", size);
			json_object_object_add(args, "percent", json_object_new_int64((int64_t)p));
		} else {
			ret = vmm_parse_size(size, 1ull << 20, &v);
			if (ret || v > INT64_MAX)
				die("bad size '%s': write it like 512M, 2G or 50%%", size);
			json_object_object_add(args, "size_bytes", json_object_new_int64((int64_t)v));
		}
	}
	if (!call_vm(name, "balloon", args, &resp))
		return 1;
	if (json)
		printf("%s\n", json_object_to_json_string_ext(resp.result, JSON_C_TO_STRING_PRETTY));
	else
		print_balloon(resp.result, stats);
	vmm_ctl_response_release(&resp);
	if (wait_s > 0) {
		fflush(stdout);
		return wait_balloon(name, wait_s);
	}
	return 0;
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);
}

/* "--watch=SECS" and the like: 0.1 .. 86400. */
static double seconds_arg(const char *arg, const char *val)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(val, &end);
	if (errno || end == val || *end || !(v >= 0.1) || v > 86400)
		die("bad %s: give a number from 0.1 to 86400", arg);
	return v;
}

static int cmd_stat(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	const char *name = NULL;
	bool json = false;
	double watch_s = 0;
	long count = 0;
	int i;

	if (want_help(argc, argv)) {
		fputs(usage_stat, stdout);
		return 0;
	}
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--watch"))
			watch_s = 2;
		else if (!strncmp(argv[i], "--watch=", 8))
			watch_s = seconds_arg(argv[i], argv[i] + 8);
		else if (!strncmp(argv[i], "--count=", 8))
			count = (long)seconds_arg(argv[i], argv[i] + 8);
		else if (!name)
			name = argv[i];
		else
			die("ebb stat takes one NAME (see ebb stat --help)");
	}
	if (!name)
		die("which VM? usage: ebb stat NAME (ebb ls lists them)");
	if (watch_s > 0 || count > 0) {
		long k;

		if (watch_s <= 0)
			watch_s = 2;
		for (k = 0; count <= 0 || k < count; k++) {
			char *sub_argv[3] = { argv[0], (char *)name, json ? "--json" : NULL };
			time_t now = time(NULL);
			char when[32];
			struct tm tm;

			if (k)
				sleep_s(watch_s);
			localtime_r(&now, &tm);
			strftime(when, sizeof(when), "%H:%M:%S", &tm);
			if (!json)
				printf("--- %s ---\n", when);
			if (cmd_stat(json ? 3 : 2, sub_argv))
				return 1;
			fflush(stdout);
		}
		return 0;
	}
	if (!call_vm(name, "query", NULL, &resp))
		return 1;
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(resp.result, JSON_C_TO_STRING_PRETTY));
	} else {
		print_report(vmm_vm_query_format, resp.result);
		print_balloon(resp.result, false);
		print_report(vmm_memory_format, resp.result);
	}
	vmm_ctl_response_release(&resp);
	return 0;
}

static const char usage_set[] =
	"usage: ebb set NAME [high=SIZE|N%] [max=SIZE|N%] [swappiness=N]\n"
	"                    [min=SIZE] [low=SIZE] [weight=N] [ksm=on|off] [--wait[=SECS]]\n"
	"\n"
	"--wait: after a new high or max, show progress until the VM's resident RAM is\n"
	"at or under the limit (exit 0), or say why it stalled (no progress for 10 s)\n"
	"or gave up after SECS (default 120) (exit 1).\n"
	"\n"
	"Changes a running VM's memory limits (resident guest RAM: background reclaim\n"
	"above high, a hard limit at max; sizes like 400M or a percentage of its RAM)\n"
	"and swappiness (0..200).  A new max without a high puts high at max - 1/16.\n"
	"min, low and weight are for ebbd (docs/ebbd.md): it never reclaims the VM\n"
	"below min, below low only when nothing else is left, and weight (1..10000,\n"
	"default 100) is its share of pressure.\n";

/*
 * `ebb set --wait`: polls the VM's stats until its resident RAM is at or
 * under the limit in force (the lower of high and max, with a slack of
 * 1/64 or 1 MiB), printing progress once a second.  Says why it stops:
 * reached, no engine, no progress for 10 s (with the refault rate: the guest
 * is using that memory), or out of time.  0 when reached.
 */
static int wait_limit(const char *name, double timeout_s)
{
	struct vmm_ctl_response resp;
	uint64_t t0 = vmm_now_ns(), now, moved = t0, printed = 0, prev_ns = 0;
	int64_t best = INT64_MAX, prev_refaults = -1;
	double refault_rate = 0;

	for (;;) {
		int64_t res, high, max, limit, refaults, slack;
		bool engine;
		struct json_object *v;

		if (!call_vm(name, "stats", NULL, &resp))
			return 1;
		now = vmm_now_ns();
		engine = json_object_object_get_ex(resp.result, "engine", &v) && v &&
			 json_object_get_boolean(v);
		res = get_int(resp.result, "resident_bytes", -1);
		high = get_int(resp.result, "high_bytes", 0);
		max = get_int(resp.result, "max_bytes", 0);
		refaults = get_int(resp.result, "nr_refaults", 0);
		vmm_ctl_response_release(&resp);
		if (!engine) {
			printf("%s: no reclaim engine: limits do not apply to its RAM\n", name);
			return 1;
		}
		limit = high > 0 && (max <= 0 || high < max) ? high : max;
		if (limit <= 0) {
			printf("%s: no limit in force: nothing to wait for\n", name);
			return 0;
		}
		if (prev_refaults >= 0 && now > prev_ns)
			refault_rate = (double)(refaults - prev_refaults) * 1e9 / (double)(now - prev_ns);
		prev_refaults = refaults;
		prev_ns = now;
		slack = limit / 64 > (1 << 20) ? limit / 64 : (1 << 20);
		if (res >= 0 && res <= limit + slack) {
			printf("%s: reached: resident %lld MiB, limit %lld MiB, after %.1f s\n", name,
			       (long long)(res >> 20), (long long)(limit >> 20),
			       (double)(now - t0) / 1e9);
			return 0;
		}
		if (res < best - (256 << 10)) {
			best = res;
			moved = now;
		}
		if (now - moved > 10000000000ull) {
			printf("%s: stalled: resident %lld MiB has not come down for 10 s, limit %lld MiB; "
			       "%.0f refaults/s: %s\n", name, (long long)(res >> 20),
			       (long long)(limit >> 20), refault_rate,
			       refault_rate > 100 ? "the guest keeps using that memory (its working set "
			       "is above the limit)" : "reclaim is not making progress (see ebb stat)");
			return 1;
		}
		if ((double)(now - t0) / 1e9 > timeout_s) {
			printf("%s: gave up after %.0f s: resident %lld MiB, limit %lld MiB\n", name,
			       timeout_s, (long long)(res >> 20), (long long)(limit >> 20));
			return 1;
		}
		if (now - printed >= 1000000000ull) {
			printf("%s: resident %lld MiB, limit %lld MiB, %lld MiB to go\n", name,
			       (long long)(res >> 20), (long long)(limit >> 20),
			       (long long)((res - limit) >> 20));
			fflush(stdout);
			printed = now;
		}
		sleep_s(0.25);
	}
}

static int cmd_set(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	struct json_object *args;
	const char *name = NULL;
	bool limit_given = false;
	double wait_s = 0;
	int i;

	if (want_help(argc, argv)) {
		fputs(usage_set, stdout);
		return 0;
	}
	args = json_object_new_object();
	if (!args)
		die("out of memory");
	for (i = 1; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');

		if (!strcmp(argv[i], "--wait")) {
			wait_s = 120;
			continue;
		}
		if (!strncmp(argv[i], "--wait=", 7)) {
			wait_s = seconds_arg(argv[i], argv[i] + 7);
			continue;
		}
		if (!eq) {
			if (name)
				die("unexpected '%s' (see ebb set --help)", argv[i]);
			name = argv[i];
			continue;
		}
		if (!strncmp(argv[i], "high=", 5) || !strncmp(argv[i], "max=", 4)) {
			struct vmm_mem_size sz;
			bool high = argv[i][0] == 'h';

			if (vmm_mem_size_parse(eq + 1, &sz))
				die("bad %s: give a size (400M, 1G) or a percentage (30%%)", argv[i]);
			json_object_object_add(args, sz.is_pct ? (high ? "high_percent" : "max_percent")
							       : (high ? "high_bytes" : "max_bytes"),
					       json_object_new_int64((int64_t)sz.value));
			limit_given = true;
		} else if (!strncmp(argv[i], "min=", 4) || !strncmp(argv[i], "low=", 4)) {
			uint64_t v;

			if (vmm_parse_size(eq + 1, 1ull << 20, &v))
				die("bad %s: give a size (400M, 1G)", argv[i]);
			json_object_object_add(args, argv[i][0] == 'm' ? "min_bytes" : "low_bytes",
					       json_object_new_int64((int64_t)v));
		} else if (!strncmp(argv[i], "ksm=", 4)) {
			if (strcmp(eq + 1, "on") != 0 && strcmp(eq + 1, "off") != 0)
				die("bad %s: give on or off", argv[i]);
			json_object_object_add(args, "ksm", json_object_new_boolean(!strcmp(eq + 1, "on")));
		} else if (!strncmp(argv[i], "weight=", 7)) {
			char *end;
			long v;

			errno = 0;
			v = strtol(eq + 1, &end, 10);
			if (errno || *end || end == eq + 1 || v < 1 || v > 10000)
				die("bad %s: give 1 to 10000", argv[i]);
			json_object_object_add(args, "weight", json_object_new_int64(v));
		} else if (!strncmp(argv[i], "swappiness=", 11)) {
			char *end;
			long v;

			errno = 0;
			v = strtol(eq + 1, &end, 10);
			if (errno || *end || end == eq + 1 || v < 0 || v > 200)
				die("bad %s: give 0 to 200", argv[i]);
			json_object_object_add(args, "swappiness", json_object_new_int64(v));
		} else {
			die("unknown setting '%s' (see ebb set --help)", argv[i]);
		}
	}
	if (!name)
		die("which VM? usage: ebb set NAME high=SIZE max=SIZE swappiness=N");
	if (!call_vm(name, "set", args, &resp))
		return 1;
	if (get_int(resp.result, "high_pages", -1) >= 0)
		printf("%s: high %lld pages, max %lld pages, swappiness %lld\n", name,
		       (long long)get_int(resp.result, "high_pages", -1),
		       (long long)get_int(resp.result, "max_pages", -1),
		       (long long)get_int(resp.result, "swappiness", -1));
	{
		struct json_object *pool;

		if (json_object_object_get_ex(resp.result, "pool", &pool))
			printf("%s: min %lld bytes, low %lld bytes, weight %lld\n", name,
			       (long long)get_int(pool, "min_bytes", -1),
			       (long long)get_int(pool, "low_bytes", -1),
			       (long long)get_int(pool, "weight", -1));
	}
	vmm_ctl_response_release(&resp);
	if (wait_s > 0 && limit_given) {
		fflush(stdout);
		return wait_limit(name, wait_s);
	}
	return 0;
}

static int cmd_stop(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	char rundir[256];
	int ret, i, fd;

	if (want_help(argc, argv)) {
		fputs(usage_stop, stdout);
		return 0;
	}
	if (argc != 2)
		die("usage: ebb stop NAME");
	rundir_or_die(rundir, sizeof(rundir), false);
	fd = vmm_ctl_connect(rundir, argv[1]);
	if (fd < 0)
		name_error(argv[1], fd);
	ret = vmm_ctl_call(fd, "stop", NULL, CALL_TIMEOUT_MS, &resp);
	if (ret) {
		close(fd);
		name_error(argv[1], ret);
	}
	if (!resp.ok) {
		fprintf(stderr, "ebb: %s: %s\n", resp.error_code, resp.error_message);
		vmm_ctl_response_release(&resp);
		close(fd);
		return 1;
	}
	vmm_ctl_response_release(&resp);
	/* The VMM closes the socket when it is gone: wait up to 10 s for that
	 * (100 reads of at most 100 ms), never forever. */
	{
		struct timeval tv = { .tv_sec = 0, .tv_usec = 100000 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	for (i = 0; i < 100; i++) {
		char b;
		ssize_t n = recv(fd, &b, 1, 0);

		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
		if (n < 0)
			continue;
	}
	close(fd);
	for (i = 0; i < 100; i++) {
		int probe = vmm_ctl_connect(rundir, argv[1]);

		if (probe < 0)
			break;
		close(probe);
		usleep(100000);
	}
	if (i == 100)
		die("VM %s did not stop within 10 s", argv[1]);
	printf("stopped %s\n", argv[1]);
	return 0;
}

/* Test only (docs/vmm.md): ebb debug-poison NAME GPA [--swap [--no-hwpoison]];
 * the VM must have been started with EBB_TEST_HOOKS=1.  Not listed in the
 * help. */
static int cmd_debug_poison(int argc, char **argv)
{
	struct vmm_ctl_response resp;
	struct json_object *args;
	unsigned long long gpa;
	bool via_swap = false, no_hw = false;
	char *end;

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--swap"))
			via_swap = true;
		else if (!strcmp(argv[i], "--no-hwpoison"))
			no_hw = true;
		else
			argc = -1;
	}
	if (argc < 3 || (no_hw && !via_swap))
		die("usage: ebb debug-poison NAME GPA [--swap [--no-hwpoison]] (test only)");
	errno = 0;
	gpa = strtoull(argv[2], &end, 0);
	if (errno || *end || end == argv[2])
		die("bad GPA '%s'", argv[2]);
	args = json_object_new_object();
	json_object_object_add(args, "gpa", json_object_new_int64((int64_t)gpa));
	if (via_swap)
		json_object_object_add(args, "via", json_object_new_string("swap"));
	if (no_hw)
		json_object_object_add(args, "no_hwpoison", json_object_new_boolean(1));
	/* --swap reclaims the whole region first: slow under emulation. */
	if (!call_vm_ms(argv[1], "debug-poison", args, via_swap ? 120000 : CALL_TIMEOUT_MS,
			&resp))  /* consumes args */
		return 1;
	if (via_swap)
		printf("guest page 0x%llx swapped out; its next swap-in fails%s\n", gpa & ~0xfffull,
		       no_hw ? " (MADV_HWPOISON disabled)" : "");
	else
		printf("poisoned guest page 0x%llx\n", gpa & ~0xfffull);
	vmm_ctl_response_release(&resp);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	if (!cmd || !strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_main, cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("ebb %s (control protocol %d)\n", EBB_VERSION, VMM_CTL_PROTOCOL_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "ls"))
		return cmd_ls(argc - 1, argv + 1);
	if (!strcmp(cmd, "stat"))
		return cmd_stat(argc - 1, argv + 1);
	if (!strcmp(cmd, "stop"))
		return cmd_stop(argc - 1, argv + 1);
	if (!strcmp(cmd, "balloon"))
		return cmd_balloon(argc - 1, argv + 1);
	if (!strcmp(cmd, "set"))
		return cmd_set(argc - 1, argv + 1);
	if (!strcmp(cmd, "pool"))
		return cmd_pool(argc - 1, argv + 1);
	if (!strcmp(cmd, "top"))
		return ebb_top_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return ebb_bench_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "debug-poison"))
		return cmd_debug_poison(argc - 1, argv + 1);
	fprintf(stderr, "ebb: unknown command '%s'\n\n%s", cmd, usage_main);
	return 2;
}
