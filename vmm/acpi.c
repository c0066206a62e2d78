/*
 * vmm/acpi.c — builds the ACPI tables described in acpi.h.
 *
 * Overview.  Every table is written byte by byte, little endian, at the
 * offsets of the ACPI specification (6.x; the FADT is the revision 3 layout,
 * 244 bytes, which every Linux since 2.6 parses, with the 32-bit and the
 * 64-bit "X_" addresses both filled and agreeing).  Tables are laid out one
 * after the other from base_gpa: RSDP, RSDT, XSDT, FACS (64-byte aligned),
 * FADT, DSDT, MADT; each SDT's bytes sum to zero, the RSDP's first 20 bytes
 * and all its 36 bytes too.
 *
 * The DSDT's AML is emitted by a few helpers (a name, a package length, a
 * byte constant); package lengths use the one- to four-byte encoding of the
 * AML specification, so the code does not depend on today's sizes.
 */
#include <errno.h>
#include <string.h>

#include "vmm/acpi.h"

#define SDT_HEADER_BYTES 36
#define RSDP_BYTES 36
#define FACS_BYTES 64
#define FADT_BYTES 244
#define FADT_REVISION 3

struct out {
	uint8_t *buf;
	size_t len, off;
	bool overflow;
};

static void put8(struct out *o, uint8_t v)
{
	if (o->off < o->len)
		o->buf[o->off] = v;
	else
		o->overflow = true;
	o->off++;
}

static void put16(struct out *o, uint16_t v)
{
	put8(o, (uint8_t)v);
	put8(o, (uint8_t)(v >> 8));
}

static void put32(struct out *o, uint32_t v)
{
	put16(o, (uint16_t)v);
	put16(o, (uint16_t)(v >> 16));
}

static void put64(struct out *o, uint64_t v)
{
	put32(o, (uint32_t)v);
	put32(o, (uint32_t)(v >> 32));
}

static void put_bytes(struct out *o, const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		put8(o, ((const uint8_t *)p)[i]);
}

static void align(struct out *o, size_t a)
{
	while (o->off % a)
		put8(o, 0);
}

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* Writes an SDT header with length and checksum left 0: fixed by sdt_end(). */
static size_t sdt_begin(struct out *o, const char sig[4], uint8_t revision)
{
	size_t start = o->off;

	put_bytes(o, sig, 4);
	put32(o, 0);                       /* length */
	put8(o, revision);
	put8(o, 0);                        /* checksum */
	put_bytes(o, "EBB   ", 6);         /* OEM id */
	put_bytes(o, "EBBVMM  ", 8);       /* OEM table id */
	put32(o, 1);                       /* OEM revision */
	put_bytes(o, "EBB ", 4);           /* creator id */
	put32(o, 1);                       /* creator revision */
	return start;
}

static void sdt_end(struct out *o, size_t start)
{
	uint32_t len = (uint32_t)(o->off - start);

	if (o->overflow)
		return;
	memcpy(o->buf + start + 4, &len, 4);
	o->buf[start + 9] = (uint8_t)(0 - sum8(o->buf + start, len));
}

/* Generic address structure: system I/O space. */
static void put_gas_io(struct out *o, uint8_t bit_width, uint8_t access_size, uint16_t port)
{
	put8(o, 1);             /* system I/O */
	put8(o, bit_width);
	put8(o, 0);             /* bit offset */
	put8(o, access_size);   /* 1 byte, 2 word, 3 dword */
	put64(o, port);
}

/* ---- AML ---------------------------------------------------------------------- */

#define AML_NAME_OP    0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_STRING_PREFIX 0x0d
#define AML_SCOPE_OP   0x10
#define AML_BUFFER_OP  0x11
#define AML_PACKAGE_OP 0x12
#define AML_EXT_PREFIX 0x5b
#define AML_DEVICE_OP  0x82
#define AML_ROOT_CHAR  0x5c

/* PkgLength for a body of body_len bytes (the length counts itself). */
static void aml_pkglen(struct out *o, size_t body_len)
{
	size_t total;

	if (body_len + 1 < 0x40) {
		put8(o, (uint8_t)(body_len + 1));
		return;
	}
	for (unsigned n = 2; n <= 4; n++) {
		total = body_len + n;
		if (total < (1ull << (4 + 8 * (n - 1)))) {
			put8(o, (uint8_t)(((n - 1) << 6) | (total & 0x0f)));
			total >>= 4;
			for (unsigned i = 1; i < n; i++, total >>= 8)
				put8(o, (uint8_t)total);
			return;
		}
	}
	o->overflow = true;
}

/* An AML object with a PkgLength: writes the body into a scratch buffer
 * first, then prefix + length + body. */
struct aml_scratch {
	uint8_t buf[1024];
	struct out o;
};

static void scratch_init(struct aml_scratch *s)
{
	s->o = (struct out){ .buf = s->buf, .len = sizeof(s->buf) };
}

static void aml_wrap(struct out *o, const uint8_t *prefix, size_t prefix_len,
		     const struct aml_scratch *body)
{
	if (body->o.overflow) {
		o->overflow = true;
		return;
	}
	put_bytes(o, prefix, prefix_len);
	aml_pkglen(o, body->o.off);
	put_bytes(o, body->buf, body->o.off);
}

/* Name(NAME, <byte-constant package>) for \_S5: {typ_a, typ_b, 0, 0}. */
static void aml_s5(struct out *o)
{
	static const uint8_t pkg_op = AML_PACKAGE_OP;
	struct aml_scratch s;

	scratch_init(&s);
	put8(&s.o, 4);                                  /* NumElements */
	put8(&s.o, AML_BYTE_PREFIX);
	put8(&s.o, VMM_ACPI_S5_SLP_TYP);                /* SLP_TYPa */
	put8(&s.o, AML_BYTE_PREFIX);
	put8(&s.o, VMM_ACPI_S5_SLP_TYP);                /* SLP_TYPb */
	put8(&s.o, 0);                                  /* Zero (reserved) */
	put8(&s.o, 0);
	put8(o, AML_NAME_OP);
	put_bytes(o, "_S5_", 4);
	aml_wrap(o, &pkg_op, 1, &s);
}

/* Scope(\_SB) { Device(PEVT) { _HID "QEMU0001", _CRS IO(port, 1), _STA 0xf } } */
static void aml_pvpanic(struct out *o)
{
	static const uint8_t scope_op[] = { AML_SCOPE_OP };
	static const uint8_t device_op[] = { AML_EXT_PREFIX, AML_DEVICE_OP };
	static const uint8_t buffer_op[] = { AML_BUFFER_OP };
	struct aml_scratch dev, scope, crs;

	/* The resource template: an I/O port descriptor and the end tag. */
	scratch_init(&crs);
	put8(&crs.o, AML_BYTE_PREFIX);
	put8(&crs.o, 10);                               /* buffer size */
	put8(&crs.o, 0x47);                             /* I/O port descriptor */
	put8(&crs.o, 0x01);                             /* decodes 16 bits */
	put16(&crs.o, VMM_PVPANIC_PORT);                /* minimum base */
	put16(&crs.o, VMM_PVPANIC_PORT);                /* maximum base */
	put8(&crs.o, 1);                                /* alignment */
	put8(&crs.o, 1);                                /* length */
	put8(&crs.o, 0x79);                             /* end tag */
	put8(&crs.o, 0);                                /* checksum: 0 = not checked */

	scratch_init(&dev);
	put_bytes(&dev.o, "PEVT", 4);
	put8(&dev.o, AML_NAME_OP);
	put_bytes(&dev.o, "_HID", 4);
	put8(&dev.o, AML_STRING_PREFIX);
	put_bytes(&dev.o, "QEMU0001", 9);               /* with its NUL */
	put8(&dev.o, AML_NAME_OP);
	put_bytes(&dev.o, "_CRS", 4);
	aml_wrap(&dev.o, buffer_op, sizeof(buffer_op), &crs);
	put8(&dev.o, AML_NAME_OP);
	put_bytes(&dev.o, "_STA", 4);
	put8(&dev.o, AML_BYTE_PREFIX);
	put8(&dev.o, 0x0f);                             /* present, enabled, shown, working */

	scratch_init(&scope);
	put8(&scope.o, AML_ROOT_CHAR);
	put_bytes(&scope.o, "_SB_", 4);
	aml_wrap(&scope.o, device_op, sizeof(device_op), &dev);
	aml_wrap(o, scope_op, sizeof(scope_op), &scope);
}

/* ---- tables --------------------------------------------------------------------- */

static void build_fadt(struct out *o, uint32_t facs_gpa, uint32_t dsdt_gpa)
{
	size_t start = sdt_begin(o, "FACP", FADT_REVISION);

	put32(o, facs_gpa);                      /*  36 FIRMWARE_CTRL */
	put32(o, dsdt_gpa);                      /*  40 DSDT */
	put8(o, 0);                              /*  44 reserved */
	put8(o, 0);                              /*  45 preferred PM profile: unspecified */
	put16(o, VMM_ACPI_SCI_IRQ);              /*  46 SCI_INT */
	put32(o, 0);                             /*  48 SMI_CMD: none, always in ACPI mode */
	put8(o, 0);                              /*  52 ACPI_ENABLE */
	put8(o, 0);                              /*  53 ACPI_DISABLE */
	put8(o, 0);                              /*  54 S4BIOS_REQ */
	put8(o, 0);                              /*  55 PSTATE_CNT */
	put32(o, VMM_ACPI_PM1_EVT_PORT);         /*  56 PM1a_EVT_BLK */
	put32(o, 0);                             /*  60 PM1b_EVT_BLK */
	put32(o, VMM_ACPI_PM1_CNT_PORT);         /*  64 PM1a_CNT_BLK */
	put32(o, 0);                             /*  68 PM1b_CNT_BLK */
	put32(o, 0);                             /*  72 PM2_CNT_BLK */
	put32(o, 0);                             /*  76 PM_TMR_BLK: none */
	put32(o, 0);                             /*  80 GPE0_BLK */
	put32(o, 0);                             /*  84 GPE1_BLK */
	put8(o, VMM_ACPI_PM1_EVT_LEN);           /*  88 PM1_EVT_LEN */
	put8(o, VMM_ACPI_PM1_CNT_LEN);           /*  89 PM1_CNT_LEN */
	put8(o, 0);                              /*  90 PM2_CNT_LEN */
	put8(o, 0);                              /*  91 PM_TMR_LEN */
	put8(o, 0);                              /*  92 GPE0_BLK_LEN */
	put8(o, 0);                              /*  93 GPE1_BLK_LEN */
	put8(o, 0);                              /*  94 GPE1_BASE */
	put8(o, 0);                              /*  95 CST_CNT */
	put16(o, 101);                           /*  96 P_LVL2_LAT: > 100, C2 unsupported */
	put16(o, 1001);                          /*  98 P_LVL3_LAT: > 1000, C3 unsupported */
	put16(o, 0);                             /* 100 FLUSH_SIZE */
	put16(o, 0);                             /* 102 FLUSH_STRIDE */
	put8(o, 0);                              /* 104 DUTY_OFFSET */
	put8(o, 0);                              /* 105 DUTY_WIDTH */
	put8(o, 0);                              /* 106 DAY_ALRM */
	put8(o, 0);                              /* 107 MON_ALRM */
	put8(o, 0);                              /* 108 CENTURY */
	put16(o, 0x0007);                        /* 109 IAPC_BOOT_ARCH: legacy devices, 8042, no VGA */
	put8(o, 0);                              /* 111 reserved */
	/* 112 flags: WBINVD, PROC_C1, no fixed power / sleep button */
	put32(o, (1u << 0) | (1u << 2) | (1u << 4) | (1u << 5));
	put_gas_io(o, 0, 0, 0);                  /* 116 RESET_REG: none */
	put8(o, 0);                              /* 128 RESET_VALUE */
	put8(o, 0);                              /* 129..131 reserved */
	put8(o, 0);
	put8(o, 0);
	put64(o, facs_gpa);                      /* 132 X_FIRMWARE_CTRL */
	put64(o, dsdt_gpa);                      /* 140 X_DSDT */
	put_gas_io(o, VMM_ACPI_PM1_EVT_LEN * 8, 2, VMM_ACPI_PM1_EVT_PORT); /* 148 */
	put_gas_io(o, 0, 0, 0);                  /* 160 X_PM1b_EVT_BLK */
	put_gas_io(o, VMM_ACPI_PM1_CNT_LEN * 8, 2, VMM_ACPI_PM1_CNT_PORT); /* 172 */
	put_gas_io(o, 0, 0, 0);                  /* 184 X_PM1b_CNT_BLK */
	put_gas_io(o, 0, 0, 0);                  /* 196 X_PM2_CNT_BLK */
	put_gas_io(o, 0, 0, 0);                  /* 208 X_PM_TMR_BLK */
	put_gas_io(o, 0, 0, 0);                  /* 220 X_GPE0_BLK */
	put_gas_io(o, 0, 0, 0);                  /* 232 X_GPE1_BLK */
	sdt_end(o, start);
}

static void build_madt(struct out *o, const struct vmm_acpi_cfg *cfg)
{
	size_t start = sdt_begin(o, "APIC", 3);

	put32(o, cfg->lapic_gpa);
	put32(o, 1);                             /* PCAT_COMPAT: 8259s present */
	for (unsigned i = 0; i < cfg->nr_cpus; i++) {
		put8(o, 0);                      /* processor local APIC */
		put8(o, 8);
		put8(o, (uint8_t)i);             /* ACPI processor UID */
		put8(o, (uint8_t)i);             /* APIC id */
		put32(o, 1);                     /* enabled */
	}
	put8(o, 1);                              /* I/O APIC */
	put8(o, 12);
	put8(o, cfg->ioapic_id);
	put8(o, 0);
	put32(o, cfg->ioapic_gpa);
	put32(o, 0);                             /* GSI base */
	put8(o, 2);                              /* interrupt source override: the SCI */
	put8(o, 10);
	put8(o, 0);                              /* ISA */
	put8(o, VMM_ACPI_SCI_IRQ);
	put32(o, VMM_ACPI_SCI_IRQ);
	put16(o, 0x000d);                        /* active high, level */
	put8(o, 4);                              /* local APIC NMI: LINT1 on every CPU */
	put8(o, 6);
	put8(o, 0xff);
	put16(o, 0);
	put8(o, 1);
	sdt_end(o, start);
}

long vmm_acpi_build(uint8_t *buf, size_t buf_len, uint32_t base_gpa,
		    const struct vmm_acpi_cfg *cfg, struct vmm_acpi_layout *layout)
{
	struct out o = { .buf = buf, .len = buf_len };
	struct vmm_acpi_layout l = { .rsdp_gpa = base_gpa };
	size_t rsdt, xsdt, dsdt;

	if (!cfg || cfg->nr_cpus == 0 || cfg->nr_cpus > VMM_ACPI_MAX_CPUS ||
	    cfg->ioapic_id < cfg->nr_cpus || base_gpa % 64 || base_gpa < 0xe0000 ||
	    base_gpa > 0xfffff)
		return -EINVAL;
	memset(buf, 0, buf_len);

	/* RSDP, addresses filled in below. */
	put_bytes(&o, "RSD PTR ", 8);
	put8(&o, 0);                             /* checksum of bytes 0..19 */
	put_bytes(&o, "EBB   ", 6);
	put8(&o, 2);                             /* revision: ACPI 2.0+ */
	put32(&o, 0);                            /* 16 RSDT address */
	put32(&o, RSDP_BYTES);                   /* 20 length */
	put64(&o, 0);                            /* 24 XSDT address */
	put8(&o, 0);                             /* 32 extended checksum */
	put8(&o, 0);
	put8(&o, 0);
	put8(&o, 0);
	align(&o, 16);

	/* Table addresses are known before the tables: compute the layout. */
	rsdt = o.off;
	l.rsdt_gpa = base_gpa + (uint32_t)rsdt;
	l.xsdt_gpa = l.rsdt_gpa + ((SDT_HEADER_BYTES + 2 * 4 + 15) & ~15u);
	l.facs_gpa = (l.xsdt_gpa + SDT_HEADER_BYTES + 2 * 8 + 63) & ~63u;
	l.fadt_gpa = l.facs_gpa + FACS_BYTES;
	l.dsdt_gpa = (l.fadt_gpa + FADT_BYTES + 15) & ~15u;

	/* RSDT and XSDT: FADT and MADT.  MADT follows the DSDT, whose size is
	 * known only once emitted: patch both entries afterwards. */
	{
		size_t s = sdt_begin(&o, "RSDT", 1);

		put32(&o, l.fadt_gpa);
		put32(&o, 0);                    /* MADT, patched */
		sdt_end(&o, s);
		align(&o, 16);
		xsdt = o.off;
		s = sdt_begin(&o, "XSDT", 1);
		put64(&o, l.fadt_gpa);
		put64(&o, 0);                    /* MADT, patched */
		sdt_end(&o, s);
		align(&o, 64);
	}
	if (base_gpa + o.off != l.facs_gpa)
		return -EINVAL;  /* layout arithmetic and emission disagree: a bug */
	put_bytes(&o, "FACS", 4);
	put32(&o, FACS_BYTES);
	while (o.off < (size_t)(l.facs_gpa - base_gpa) + FACS_BYTES)
		put8(&o, 0);
	build_fadt(&o, l.facs_gpa, l.dsdt_gpa);
	align(&o, 16);
	dsdt = o.off;
	{
		size_t s = sdt_begin(&o, "DSDT", 2);

		aml_s5(&o);
		aml_pvpanic(&o);
		sdt_end(&o, s);
	}
	align(&o, 16);
	l.madt_gpa = base_gpa + (uint32_t)o.off;
	build_madt(&o, cfg);
	l.end_gpa = base_gpa + (uint32_t)o.off;
	if (o.overflow)
		return -ENOSPC;
	if (base_gpa + dsdt != l.dsdt_gpa)
		return -EINVAL;

	/* Patch the MADT into RSDT and XSDT, redo their checksums. */
	memcpy(buf + rsdt + SDT_HEADER_BYTES + 4, &l.madt_gpa, 4);
	buf[rsdt + 9] = 0;
	buf[rsdt + 9] = (uint8_t)(0 - sum8(buf + rsdt, SDT_HEADER_BYTES + 8));
	{
		uint64_t madt = l.madt_gpa;

		memcpy(buf + xsdt + SDT_HEADER_BYTES + 8, &madt, 8);
		buf[xsdt + 9] = 0;
		buf[xsdt + 9] = (uint8_t)(0 - sum8(buf + xsdt, SDT_HEADER_BYTES + 16));
	}
	/* RSDP addresses and checksums. */
	memcpy(buf + 16, &l.rsdt_gpa, 4);
	{
		uint64_t x = l.xsdt_gpa;

		memcpy(buf + 24, &x, 8);
	}
	buf[8] = (uint8_t)(0 - sum8(buf, 20));
	buf[32] = (uint8_t)(0 - sum8(buf, RSDP_BYTES));
	if (layout)
		*layout = l;
	return (long)o.off;
}

bool vmm_acpi_pm1_cnt_is_poweroff(uint16_t value)
{
	return (value & VMM_ACPI_PM1_SLP_EN) &&
	       ((value & VMM_ACPI_PM1_SLP_TYP_MASK) >> VMM_ACPI_PM1_SLP_TYP_SHIFT) ==
		       VMM_ACPI_S5_SLP_TYP;
}
