/*
 * vmm/mce.h — machine checks for guest memory the host lost.
 *
 * When a page of guest RAM is poisoned on the host (hardware, or the reclaim
 * engine's UFFDIO_POISON for a page it could not give back), the guest's
 * next access makes KVM send SIGBUS (BUS_MCEERR_AR, si_addr = the host
 * address) to the vCPU thread.  Instead of dying, ebb maps the address to a
 * guest-physical one and injects a machine check there
 * (KVM_X86_SET_MCE), encoded as real hardware reports an uncorrected,
 * software-recoverable memory read error: the guest kernel then kills only
 * the process that used the page and retires the page.
 *
 * This file is the encoding (pure, unit-tested); vm.c does the plumbing.
 *
 * Bits (Intel SDM vol. 3B ch. 16, AMD APM vol. 2 ch. 9):
 *   MCG_CAP: bank count [7:0], MCG_CTL_P [8], MCG_SER_P [24] (software
 *     error recovery: without it the guest treats any UC error as fatal).
 *   MCi_STATUS: VAL 63, OVER 62, UC 61, EN 60, MISCV 59, ADDRV 58, PCC 57,
 *     S 56, AR 55; MCA error code [15:0]: 0x134 = data load from memory
 *     (what Linux grades "action required: data load error"); 0xc0 = a
 *     memory scrub error found in the background (action optional).
 *   MCi_MISC: address mode [8:6] = 2 (physical), address LSB [5:0] = 12
 *     (one 4 KiB page).
 *   MCG_STATUS: RIPV 0 (restart at RIP is valid), EIPV 1 (the error is at
 *     RIP), MCIP 2 (machine check in progress).
 */
#ifndef EBB_VMM_MCE_H
#define EBB_VMM_MCE_H

#include <stdbool.h>
#include <stdint.h>

#define VMM_MCE_NR_BANKS 10u     /* what we ask for (fewer if KVM offers fewer) */
#define VMM_MCE_MIN_BANKS 2u

#define VMM_MCG_CTL_P   (1ull << 8)
#define VMM_MCG_SER_P   (1ull << 24)
#define VMM_MCG_STATUS_RIPV (1ull << 0)
#define VMM_MCG_STATUS_EIPV (1ull << 1)
#define VMM_MCG_STATUS_MCIP (1ull << 2)

#define VMM_MCI_STATUS_VAL   (1ull << 63)
#define VMM_MCI_STATUS_OVER  (1ull << 62)
#define VMM_MCI_STATUS_UC    (1ull << 61)
#define VMM_MCI_STATUS_EN    (1ull << 60)
#define VMM_MCI_STATUS_MISCV (1ull << 59)
#define VMM_MCI_STATUS_ADDRV (1ull << 58)
#define VMM_MCI_STATUS_PCC   (1ull << 57)
#define VMM_MCI_STATUS_S     (1ull << 56)
#define VMM_MCI_STATUS_AR    (1ull << 55)
#define VMM_MCACOD_DATA_LOAD 0x0134u
#define VMM_MCACOD_SCRUB     0x00c0u

/* One machine check to inject: the fields of struct kvm_x86_mce. */
struct vmm_mce {
	uint64_t status, addr, misc, mcg_status;
	uint8_t bank;
};

/*
 * The MCG_CAP to give the vCPUs (KVM_X86_SETUP_MCE) out of what KVM
 * supports: max_banks is KVM_CHECK_EXTENSION(KVM_CAP_MCE) (the bank count
 * KVM can emulate), kvm_supported the capability bits of
 * KVM_X86_GET_MCE_CAP_SUPPORTED (its low byte, the count field, is 0 there
 * and ignored).  VMM_MCE_NR_BANKS banks or fewer, with MCG_CTL_P and
 * MCG_SER_P when offered.  0 when KVM cannot give at least
 * VMM_MCE_MIN_BANKS banks with MCG_SER_P: then ebb does not offer machine
 * checks (and a lost page ends the VM, as before).
 */
uint64_t vmm_mce_mcg_cap(uint64_t kvm_supported, unsigned max_banks);

/*
 * The machine check for a lost 4 KiB page at gpa, in the last bank of
 * mcg_cap: action required (the vCPU was reading it: BUS_MCEERR_AR) or
 * optional (found in the background: BUS_MCEERR_AO).  Returns false when
 * mcg_cap has no banks.
 */
bool vmm_mce_encode(uint64_t mcg_cap, uint64_t gpa, bool action_required, struct vmm_mce *out);

#endif
