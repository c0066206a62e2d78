/*
 * vmm/acpi.h — the minimal ACPI tables that give the guest kernel, and only
 * the guest kernel, a way to power the VM off and to report a panic:
 *
 *   RSDP (ACPI 2.0, in the BIOS area where Linux scans) -> RSDT and XSDT
 *   -> FADT (PM1a event block, PM1a control block, SCI, a FACS, the DSDT)
 *   -> MADT (one local APIC per vCPU, the I/O APIC, the SCI override, LINT1
 *      as NMI).
 *   DSDT: \_S5 (the soft-off sleep type) and \_SB.PEVT, the pvpanic device
 *   (_HID "QEMU0001", one I/O port), which Linux's pvpanic-mmio driver binds.
 *
 * Power-off: the kernel writes SLP_TYP = VMM_ACPI_S5_SLP_TYP with SLP_EN to
 * PM1a_CNT (vmm_acpi_pm1_cnt_write says so).  Panic: the kernel's panic
 * notifier writes PVPANIC_PANICKED to the pvpanic port.  Both are I/O ports
 * that only guest ring 0 (or a guest root that asked the kernel for port
 * access) can reach; nothing a guest user prints on a console can stand in
 * for them.
 *
 * Interrupt routing stays with the MP table: ebb's command line carries
 * acpi=noirq, so the kernel takes its CPUs from the MADT but its I/O APIC
 * and its PCI INTx routing from the MP table (there is no _PRT here).  The
 * MADT still describes the I/O APIC and ISA IRQs exactly as the MP table
 * does (identity, PIT on pin 0), so a kernel that does use it sees the same.
 */
#ifndef EBB_VMM_ACPI_H
#define EBB_VMM_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_ACPI_PM1_EVT_PORT 0x600   /* status (2 bytes), enable (2 bytes) */
#define VMM_ACPI_PM1_EVT_LEN  4
#define VMM_ACPI_PM1_CNT_PORT 0x604
#define VMM_ACPI_PM1_CNT_LEN  2
#define VMM_ACPI_SCI_IRQ      9
#define VMM_ACPI_S5_SLP_TYP   5
#define VMM_PVPANIC_PORT      0x505
#define VMM_PVPANIC_PANICKED      0x01
#define VMM_PVPANIC_CRASH_LOADED  0x02

/* PM1 control register bits. */
#define VMM_ACPI_PM1_SCI_EN       0x0001
#define VMM_ACPI_PM1_SLP_TYP_SHIFT 10
#define VMM_ACPI_PM1_SLP_TYP_MASK 0x1c00
#define VMM_ACPI_PM1_SLP_EN       0x2000

#define VMM_ACPI_MAX_CPUS 255

struct vmm_acpi_cfg {
	unsigned nr_cpus;        /* local APIC ids 0..nr_cpus-1 */
	uint8_t ioapic_id;       /* as in the MP table */
	uint32_t ioapic_gpa;
	uint32_t lapic_gpa;
};

struct vmm_acpi_layout {
	uint32_t rsdp_gpa, rsdt_gpa, xsdt_gpa, fadt_gpa, facs_gpa, dsdt_gpa, madt_gpa;
	uint32_t end_gpa;        /* first byte after the tables */
};

/*
 * Writes the tables into buf, which the guest sees at base_gpa (64-byte
 * aligned, inside 0xe0000-0xfffff so that Linux's RSDP scan finds the RSDP
 * at base_gpa).  Returns the bytes used (layout filled when not NULL), or
 * -EINVAL (bad cfg or base) / -ENOSPC (buf too small).
 */
long vmm_acpi_build(uint8_t *buf, size_t buf_len, uint32_t base_gpa,
		    const struct vmm_acpi_cfg *cfg, struct vmm_acpi_layout *layout);

/* GUEST: what a 16-bit write of value to PM1a_CNT asks for: true = power
 * off (SLP_EN with the S5 sleep type).  Other sleep types are not offered
 * (\_S5 only) and are ignored. */
bool vmm_acpi_pm1_cnt_is_poweroff(uint16_t value);

#endif
