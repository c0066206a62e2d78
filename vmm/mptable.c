/*
 * vmm/mptable.c — builds the MP table described in mptable.h.
 *
 * Overview.  Linux (arch/x86/kernel/mpparse.c) scans the BIOS area for a
 * 16-byte "_MP_" floating pointer whose bytes sum to zero; it points at a
 * "PCMP" configuration table (also summing to zero) holding one entry per
 * processor, bus, I/O APIC, interrupt source and local interrupt.  Entries
 * are laid out in the order the spec recommends (processors, buses, I/O
 * APICs, interrupt sources, local interrupts); Linux relies on processor
 * entries for SMP bring-up and on the interrupt sources for routing.
 */
#include <errno.h>
#include <string.h>

#include "vmm/mptable.h"

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length;
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature1;
	uint8_t feature2;
	uint8_t feature3;
	uint8_t feature4;
	uint8_t feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4];
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf_intel) == 16, "mpf size");
_Static_assert(sizeof(struct mpc_table) == 44, "mpc size");
_Static_assert(sizeof(struct mpc_cpu) == 20, "cpu size");
_Static_assert(sizeof(struct mpc_bus) == 8, "bus size");
_Static_assert(sizeof(struct mpc_ioapic) == 8, "ioapic size");
_Static_assert(sizeof(struct mpc_intsrc) == 8, "intsrc size");

enum {
	MP_PROCESSOR = 0, MP_BUS = 1, MP_IOAPIC = 2, MP_INTSRC = 3, MP_LINTSRC = 4,
};
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define CPU_ENABLED 1
#define CPU_BSP 2
#define MP_APIC_ENABLED 1
#define MP_IRQ_ACTIVE_HIGH 0x1
#define MP_IRQ_LEVEL (0x3 << 2)
#define MP_IRQ_EDGE (0x1 << 2)
#define BUS_PCI 0
#define BUS_ISA 1
#define NR_ISA_IRQS 16
#define APIC_VERSION 0x14
#define IOAPIC_VERSION 0x11

static unsigned nr_entries(const struct vmm_mptable_cfg *cfg)
{
	return cfg->nr_cpus + 2 + 1 + NR_ISA_IRQS + cfg->nr_pci_irqs + 2;
}

size_t vmm_mptable_size(const struct vmm_mptable_cfg *cfg)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       cfg->nr_cpus * sizeof(struct mpc_cpu) + 2 * sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) +
	       (NR_ISA_IRQS + cfg->nr_pci_irqs + 2) * sizeof(struct mpc_intsrc);
}

static uint8_t checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum = (uint8_t)(sum + *p++);
	return (uint8_t)(0 - sum);
}

long vmm_mptable_build(uint8_t *buf, size_t buf_len, uint32_t base_gpa,
		       const struct vmm_mptable_cfg *cfg)
{
	struct mpf_intel *mpf = (struct mpf_intel *)buf;
	struct mpc_table *mpc = (struct mpc_table *)(buf + sizeof(*mpf));
	uint8_t *p = (uint8_t *)(mpc + 1);
	uint8_t ioapic_id;
	size_t size;
	unsigned i;

	if (!cfg || cfg->nr_cpus == 0 || cfg->nr_cpus > VMM_MPTABLE_MAX_CPUS ||
	    cfg->nr_pci_irqs > VMM_MPTABLE_MAX_PCI_IRQS || (cfg->nr_pci_irqs && !cfg->pci_irqs) ||
	    (base_gpa & 15))
		return -EINVAL;
	for (i = 0; i < cfg->nr_pci_irqs; i++) {
		const struct vmm_mptable_pci_irq *irq = &cfg->pci_irqs[i];

		if (irq->dev > 31 || irq->pin < 1 || irq->pin > 4 ||
		    irq->ioapic_pin >= VMM_IOAPIC_NR_PINS)
			return -EINVAL;
	}
	size = vmm_mptable_size(cfg);
	if (size > buf_len || size - sizeof(*mpf) > 0xffff)
		return -ENOSPC;
	memset(buf, 0, size);
	ioapic_id = (uint8_t)cfg->nr_cpus;

	for (i = 0; i < cfg->nr_cpus; i++) {
		struct mpc_cpu cpu = {
			.type = MP_PROCESSOR,
			.apicid = (uint8_t)i,
			.apicver = APIC_VERSION,
			.cpuflag = CPU_ENABLED | (i == 0 ? CPU_BSP : 0),
			.cpufeature = cfg->cpu_signature,
			.featureflag = cfg->cpu_features,
		};
		memcpy(p, &cpu, sizeof(cpu));
		p += sizeof(cpu);
	}
	{
		struct mpc_bus pci = { .type = MP_BUS, .busid = BUS_PCI, .bustype = "PCI   " };
		struct mpc_bus isa = { .type = MP_BUS, .busid = BUS_ISA, .bustype = "ISA   " };
		struct mpc_ioapic io = {
			.type = MP_IOAPIC, .apicid = ioapic_id, .apicver = IOAPIC_VERSION,
			.flags = MP_APIC_ENABLED, .apicaddr = VMM_IOAPIC_GPA,
		};
		memcpy(p, &pci, sizeof(pci));
		p += sizeof(pci);
		memcpy(p, &isa, sizeof(isa));
		p += sizeof(isa);
		memcpy(p, &io, sizeof(io));
		p += sizeof(io);
	}
	for (i = 0; i < NR_ISA_IRQS; i++) {
		struct mpc_intsrc src = {
			.type = MP_INTSRC, .irqtype = MP_INT,
			.irqflag = MP_IRQ_ACTIVE_HIGH | MP_IRQ_EDGE,
			.srcbus = BUS_ISA, .srcbusirq = (uint8_t)i,
			.dstapic = ioapic_id, .dstirq = (uint8_t)i,
		};
		memcpy(p, &src, sizeof(src));
		p += sizeof(src);
	}
	for (i = 0; i < cfg->nr_pci_irqs; i++) {
		const struct vmm_mptable_pci_irq *irq = &cfg->pci_irqs[i];
		struct mpc_intsrc src = {
			.type = MP_INTSRC, .irqtype = MP_INT,
			.irqflag = MP_IRQ_ACTIVE_HIGH | MP_IRQ_LEVEL,
			.srcbus = BUS_PCI,
			.srcbusirq = (uint8_t)(irq->dev << 2 | (irq->pin - 1)),
			.dstapic = ioapic_id, .dstirq = irq->ioapic_pin,
		};
		memcpy(p, &src, sizeof(src));
		p += sizeof(src);
	}
	{
		/* LINT0: ExtINT from the 8259, LINT1: NMI; 0xff = all local APICs. */
		struct mpc_intsrc lint0 = {
			.type = MP_LINTSRC, .irqtype = MP_EXTINT, .srcbus = BUS_ISA,
			.dstapic = 0xff, .dstirq = 0,
		};
		struct mpc_intsrc lint1 = {
			.type = MP_LINTSRC, .irqtype = MP_NMI, .srcbus = BUS_ISA,
			.dstapic = 0xff, .dstirq = 1,
		};
		memcpy(p, &lint0, sizeof(lint0));
		p += sizeof(lint0);
		memcpy(p, &lint1, sizeof(lint1));
		p += sizeof(lint1);
	}

	memcpy(mpc->signature, "PCMP", 4);
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->spec = 4;
	memcpy(mpc->oem, "EBB     ", 8);
	memcpy(mpc->productid, "EBB VMM     ", 12);
	mpc->oemcount = (uint16_t)nr_entries(cfg);
	mpc->lapic = VMM_LAPIC_GPA;
	mpc->checksum = checksum((uint8_t *)mpc, mpc->length);

	memcpy(mpf->signature, "_MP_", 4);
	mpf->physptr = base_gpa + (uint32_t)sizeof(*mpf);
	mpf->length = 1;
	mpf->specification = 4;
	mpf->checksum = checksum((uint8_t *)mpf, sizeof(*mpf));
	return (long)(p - buf);
}
