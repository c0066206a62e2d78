/*
 * hostile: a hostile guest driver for ebb's virtio balloon, run by the box
 * scenario hostile_ebb.sh INSIDE an ebb guest.  It refuses to run unless the
 * kernel command line has "ebb.hostile=1" (never run it anywhere else: a
 * machine that is itself a VM has real virtio devices).
 *
 * From guest userspace, as root, it unbinds the guest's balloon driver,
 * takes over the device through its BAR (/sys/bus/pci/devices/BDF/resource0)
 * and config space, builds its own rings in locked pages whose physical
 * addresses come from /proc/self/pagemap, and attacks:
 *   wild      one inflate buffer of 8 PFNs that are not guest RAM (reserved
 *             low pages, beyond the end of RAM, 2^32-1);
 *   zerolen   a chain [len 0] -> [1024 bytes = 256 PFNs past the end of RAM]
 *             (a device that stops at the empty segment and then walks an
 *             uninitialised PFN array discards pages nobody named);
 *   loop      a chain whose two descriptors point at each other;
 *   range     a descriptor whose address is far outside guest RAM;
 *   index     an avail index 1000 ahead of the ring (more than its size);
 *   resets    2000 resets, each followed by DRIVER_OK without queues;
 *   barmove   the balloon's BAR0 moved onto the console's BAR0, a kick, and
 *             back (ioeventfds must follow only valid BARs).
 * Meanwhile a 32 MiB pattern area (its PFNs never named to the device) is
 * checksummed before and after.  It prints, for the host to check:
 *   hostile: sent wild=8 zerolen=256 ...   what it sent (PFN counts)
 *   hostile: pattern intact | CORRUPT (N pages)
 *   hostile: done
 * Exit 0 when it could run the attacks (the verdict is the host's), 77 when
 * the guard is missing, 2 when the device could not be set up.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define QSIZE 16u
#define PATTERN_PAGES (32u * 256u)

/* virtio_pci_common_cfg offsets */
#define C_DFSEL 0x00
#define C_DF    0x04
#define C_GFSEL 0x08
#define C_GF    0x0c
#define C_STATUS 0x14
#define C_QSEL  0x16
#define C_QSIZE 0x18
#define C_QMSIX 0x1a
#define C_QENABLE 0x1c
#define C_QNOTIFY 0x1e
#define C_QDESC 0x20
#define C_QAVAIL 0x28
#define C_QUSED 0x30

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

struct dma {        /* one locked page and its guest-physical address */
	uint8_t *va;
	uint64_t pa;
};

static char bdf[64], con_bdf[64];
static volatile uint8_t *bar;
static uint32_t common_off, notify_off, notify_mult;
static int cfg_fd, pagemap_fd;
static uint64_t ram_pages;
static struct dma desc_pg, avail_pg, used_pg, buf_pg, big_pg;
static uint16_t avail_idx;

static uint64_t virt_to_phys(const void *va)
{
	uint64_t e;

	if (pread(pagemap_fd, &e, 8, (off_t)((uintptr_t)va / PAGE * 8)) != 8 || !(e >> 63))
		return 0;
	return (e & ((1ull << 55) - 1)) * PAGE;
}

static int dma_alloc(struct dma *d)
{
	d->va = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->va == MAP_FAILED)
		return -1;
	memset(d->va, 0, PAGE);
	if (mlock(d->va, PAGE) < 0)
		return -1;
	d->pa = virt_to_phys(d->va);
	return d->pa ? 0 : -1;
}

static int sysfs_read(const char *dev, const char *file, char *buf, size_t len)
{
	char path[256];
	int fd, n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", dev, file);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = (int)read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

static int sysfs_write(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	close(fd);
	return ok ? 0 : -1;
}

/* The BDF of the virtio device with this PCI device id. */
static int find_dev(const char *devid, char *out, size_t len)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	char buf[32];

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (sysfs_read(de->d_name, "vendor", buf, sizeof(buf)) < 0 ||
		    strncmp(buf, "0x1af4", 6) != 0)
			continue;
		if (sysfs_read(de->d_name, "device", buf, sizeof(buf)) < 0 ||
		    strncmp(buf, devid, 6) != 0)
			continue;
		if (strlen(de->d_name) >= len)
			continue;
		memcpy(out, de->d_name, strlen(de->d_name) + 1);
		closedir(d);
		return 0;
	}
	closedir(d);
	return -1;
}

static uint8_t cfg8(int fd, unsigned off)
{
	uint8_t v = 0;

	if (pread(fd, &v, 1, off) != 1)
		return 0;
	return v;
}

static uint32_t cfg32(int fd, unsigned off)
{
	uint32_t v = 0;

	if (pread(fd, &v, 4, off) != 4)
		return 0;
	return v;
}

static void cfg_w32(int fd, unsigned off, uint32_t v)
{
	if (pwrite(fd, &v, 4, off) != 4)
		perror("hostile: config write");
}

static void w8(uint32_t off, uint8_t v) { *(volatile uint8_t *)(bar + common_off + off) = v; }
static void w16(uint32_t off, uint16_t v) { *(volatile uint16_t *)(bar + common_off + off) = v; }
static void w32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(bar + common_off + off) = v; }
static uint16_t r16(uint32_t off) { return *(volatile uint16_t *)(bar + common_off + off); }
static void w64(uint32_t off, uint64_t v)
{
	w32(off, (uint32_t)v);
	w32(off + 4, (uint32_t)(v >> 32));
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Reset, negotiate VERSION_1 only, set up queue 0 (inflate), DRIVER_OK. */
static int device_init(void)
{
	uint16_t notify;

	w8(C_STATUS, 0);
	while (*(volatile uint8_t *)(bar + common_off + C_STATUS) != 0)
		;
	w8(C_STATUS, 1 | 2);
	w32(C_GFSEL, 1);
	w32(C_GF, 1);                     /* bit 32: VIRTIO_F_VERSION_1 */
	w32(C_GFSEL, 0);
	w32(C_GF, 0);
	w8(C_STATUS, 1 | 2 | 8);
	if (!(*(volatile uint8_t *)(bar + common_off + C_STATUS) & 8))
		return -1;
	w16(C_QSEL, 0);
	w16(C_QSIZE, QSIZE);
	w16(C_QMSIX, 0xffff);
	w64(C_QDESC, desc_pg.pa);
	w64(C_QAVAIL, avail_pg.pa);
	w64(C_QUSED, used_pg.pa);
	notify = r16(C_QNOTIFY);
	(void)notify;
	w16(C_QENABLE, 1);
	w8(C_STATUS, 1 | 2 | 8 | 4);
	memset(avail_pg.va, 0, PAGE);
	memset(used_pg.va, 0, PAGE);
	avail_idx = 0;
	return 0;
}

static void kick(void)
{
	uint16_t qoff;

	w16(C_QSEL, 0);
	qoff = r16(C_QNOTIFY);
	__sync_synchronize();
	*(volatile uint16_t *)(bar + notify_off + (uint32_t)qoff * notify_mult) = 0;
}

/* Offers the chain starting at head, kicks, waits a little for the used ring. */
static void offer(uint16_t head, uint16_t idx_step)
{
	volatile uint16_t *ring = (volatile uint16_t *)(avail_pg.va + 4);

	ring[avail_idx % QSIZE] = head;
	__sync_synchronize();
	avail_idx = (uint16_t)(avail_idx + idx_step);
	*(volatile uint16_t *)(avail_pg.va + 2) = avail_idx;
	__sync_synchronize();
	kick();
	sleep_ms(50);
}

static struct desc *descs(void)
{
	return (struct desc *)desc_pg.va;
}

int main(void)
{
	char buf[4096], path[512];
	uint8_t *pattern;
	uint32_t *pfns, bar0, con_bar0;
	uint64_t *sums, nr_bad = 0;
	unsigned i, cap, nr_zerolen = 256, nr_loop = 1, nr_range = 16, nr_wild = 8;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0 || !strstr(buf, "ebb.hostile=1")) {
		printf("hostile: no ebb.hostile=1 on the kernel command line: refusing to run\n");
		return 77;
	}
	close(fd);
	if (find_dev("0x1045", bdf, sizeof(bdf)) < 0 || find_dev("0x1043", con_bdf, sizeof(con_bdf)) < 0) {
		printf("hostile: no virtio balloon / console PCI device\n");
		return 2;
	}
	fd = open("/proc/meminfo", O_RDONLY);
	ram_pages = 0;
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		buf[n > 0 ? n : 0] = '\0';
		ram_pages = strtoull(strchr(buf, ':') + 1, NULL, 10) / 4 * 2;  /* 2x MemTotal */
		close(fd);
	}
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY);
	if (pagemap_fd < 0 || dma_alloc(&desc_pg) || dma_alloc(&avail_pg) || dma_alloc(&used_pg) ||
	    dma_alloc(&buf_pg) || dma_alloc(&big_pg)) {
		printf("hostile: cannot lock and translate ring pages\n");
		return 2;
	}

	/* The pattern area: checksummed before and after. */
	pattern = mmap(NULL, (size_t)PATTERN_PAGES * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sums = calloc(PATTERN_PAGES, sizeof(*sums));
	if (pattern == MAP_FAILED || !sums)
		return 2;
	for (i = 0; i < PATTERN_PAGES; i++) {
		uint64_t *p = (uint64_t *)(pattern + (size_t)i * PAGE);

		for (unsigned j = 0; j < PAGE / 8; j++)
			p[j] = (uint64_t)i * 0x9e3779b97f4a7c15ull ^ j;
	}
	mlock(pattern, (size_t)PATTERN_PAGES * PAGE);
	for (i = 0; i < PATTERN_PAGES; i++) {
		const uint64_t *p = (const uint64_t *)(pattern + (size_t)i * PAGE);

		for (unsigned j = 0; j < PAGE / 8; j++)
			sums[i] = sums[i] * 31 + p[j];
	}

	/* Take the balloon away from its driver; open its config and BAR0. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	if (sysfs_write(path, bdf) < 0)
		printf("hostile: unbind failed (%s): continuing\n", strerror(errno));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	cfg_fd = open(path, O_RDWR);
	if (cfg_fd < 0)
		return 2;
	cfg_w32(cfg_fd, 4, cfg32(cfg_fd, 4) | 0x6);   /* memory space + bus master */
	for (cap = cfg8(cfg_fd, 0x34); cap; cap = cfg8(cfg_fd, cap + 1)) {
		if (cfg8(cfg_fd, cap) != 0x09)
			continue;
		if (cfg8(cfg_fd, cap + 3) == 1)
			common_off = cfg32(cfg_fd, cap + 8);
		if (cfg8(cfg_fd, cap + 3) == 2) {
			notify_off = cfg32(cfg_fd, cap + 8);
			notify_mult = cfg32(cfg_fd, cap + 16);
		}
	}
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	bar = fd < 0 ? MAP_FAILED : mmap(NULL, 0x8000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (bar == MAP_FAILED || device_init() < 0) {
		printf("hostile: cannot map or initialise the balloon\n");
		return 2;
	}
	printf("hostile: balloon %s taken over (common 0x%x notify 0x%x x%u), console %s\n", bdf,
	       common_off, notify_off, notify_mult, con_bdf);
	fflush(stdout);

	/* wild: PFNs that are not RAM. */
	pfns = (uint32_t *)buf_pg.va;
	pfns[0] = 0x9f;
	pfns[1] = 0xa0;
	pfns[2] = 0xf0;
	pfns[3] = 0xfe;
	pfns[4] = (uint32_t)ram_pages + 10;
	pfns[5] = 0xfffffff0u;
	pfns[6] = 0xffffffffu;
	pfns[7] = 0x7fffffffu;
	descs()[0] = (struct desc){ .addr = buf_pg.pa, .len = nr_wild * 4, .flags = 0 };
	offer(0, 1);

	/* zerolen: [len 0] -> [256 PFNs past the end of RAM]. */
	pfns = (uint32_t *)big_pg.va;
	for (i = 0; i < nr_zerolen; i++)
		pfns[i] = 0xfffff000u + i;
	descs()[1] = (struct desc){ .addr = buf_pg.pa, .len = 0, .flags = 1, .next = 2 };
	descs()[2] = (struct desc){ .addr = big_pg.pa, .len = nr_zerolen * 4, .flags = 0 };
	offer(1, 1);

	/* loop: 3 -> 4 -> 3 ... */
	descs()[3] = (struct desc){ .addr = big_pg.pa, .len = 4, .flags = 1, .next = 4 };
	descs()[4] = (struct desc){ .addr = big_pg.pa + 4, .len = 4, .flags = 1, .next = 3 };
	offer(3, 1);

	/* range: an address far outside RAM. */
	descs()[5] = (struct desc){ .addr = 1ull << 46, .len = nr_range * 4, .flags = 0 };
	offer(5, 1);

	/* index: the avail index runs 1000 ahead of a 16-entry ring. */
	descs()[6] = (struct desc){ .addr = big_pg.pa, .len = 4, .flags = 0 };
	offer(6, 1000);

	/* resets: a storm of resets and DRIVER_OK without queues. */
	for (i = 0; i < 2000; i++) {
		w8(C_STATUS, 0);
		w8(C_STATUS, 1 | 2 | 8 | 4);
	}
	if (device_init() < 0)
		printf("hostile: the device would not initialise after the resets\n");

	/* barmove: BAR0 onto the console's BAR0, a kick there, and back. */
	bar0 = cfg32(cfg_fd, 0x10);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", con_bdf);
	fd = open(path, O_RDONLY);
	con_bar0 = fd >= 0 ? cfg32(fd, 0x10) : 0;
	if (fd >= 0)
		close(fd);
	for (i = 0; i < 50; i++) {
		cfg_w32(cfg_fd, 0x10, con_bar0);
		sleep_ms(5);
		cfg_w32(cfg_fd, 0x10, bar0);
	}
	sleep_ms(300);
	if (device_init() < 0)
		printf("hostile: the device would not initialise after the BAR moves\n");

	/* Leave the device reset, give it back to its driver. */
	w8(C_STATUS, 0);
	snprintf(path, sizeof(path), "/sys/bus/pci/drivers/virtio-pci/bind");
	if (sysfs_write(path, bdf) < 0)
		printf("hostile: rebind failed (%s)\n", strerror(errno));

	for (i = 0; i < PATTERN_PAGES; i++) {
		const uint64_t *p = (const uint64_t *)(pattern + (size_t)i * PAGE);
		uint64_t s = 0;

		for (unsigned j = 0; j < PAGE / 8; j++)
			s = s * 31 + p[j];
		nr_bad += s != sums[i];
	}
	printf("hostile: sent wild=%u zerolen=%u loop=%u range=%u index=1 resets=2000 barmoves=50\n",
	       nr_wild, nr_zerolen, nr_loop, nr_range);
	if (nr_bad)
		printf("hostile: pattern CORRUPT (%llu of %u pages)\n", (unsigned long long)nr_bad,
		       PATTERN_PAGES);
	else
		printf("hostile: pattern intact (%u pages)\n", PATTERN_PAGES);
	printf("hostile: done\n");
	return 0;
}
