/*
 * vmm/mptable.h — the Intel MultiProcessor Specification 1.4 table that tells
 * a guest without ACPI how many CPUs it has, where the I/O APIC is, and how
 * ISA and PCI interrupts are routed (as kvmtool and Firecracker do).
 *
 * Routing matches KVM's default GSI routing with the in-kernel irqchip:
 * ISA IRQ n -> I/O APIC pin n (0..15, edge, active high, PIT on pin 0); PCI
 * INTx lines are level-triggered, active high, on pins 16..23.  LINT0 is
 * ExtINT (the 8259) and LINT1 NMI, on every local APIC.
 */
#ifndef EBB_VMM_MPTABLE_H
#define EBB_VMM_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define VMM_MPTABLE_MAX_CPUS 255       /* APIC ids 0..nr-1, I/O APIC id nr */
#define VMM_MPTABLE_MAX_PCI_IRQS 32
#define VMM_IOAPIC_GPA 0xfec00000u
#define VMM_LAPIC_GPA  0xfee00000u
#define VMM_IOAPIC_NR_PINS 24

struct vmm_mptable_pci_irq {
	uint8_t dev;      /* PCI device number on bus 0 (0..31) */
	uint8_t pin;      /* 1 = INTA .. 4 = INTD */
	uint8_t ioapic_pin;
};

struct vmm_mptable_cfg {
	unsigned nr_cpus;
	uint32_t cpu_signature;     /* CPUID.1:EAX, informational */
	uint32_t cpu_features;      /* CPUID.1:EDX, informational */
	const struct vmm_mptable_pci_irq *pci_irqs;
	unsigned nr_pci_irqs;
};

/* Bytes needed for cfg (floating pointer + configuration table). */
size_t vmm_mptable_size(const struct vmm_mptable_cfg *cfg);

/*
 * Writes the floating pointer at buf (to be placed at guest-physical
 * base_gpa, 16-byte aligned, in 0xf0000-0xfffff where Linux scans) followed
 * by the configuration table.  Returns the bytes written, or -EINVAL (bad
 * cfg, misaligned base) / -ENOSPC (buf too small).
 */
long vmm_mptable_build(uint8_t *buf, size_t buf_len, uint32_t base_gpa,
		       const struct vmm_mptable_cfg *cfg);

#endif
