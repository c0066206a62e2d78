/*
 * vmm/mce.c — machine check encoding, see mce.h.
 */
#include "vmm/mce.h"

uint64_t vmm_mce_mcg_cap(uint64_t kvm_supported, unsigned max_banks)
{
	uint64_t banks = max_banks > 0xff ? 0xff : max_banks;

	if (banks < VMM_MCE_MIN_BANKS || !(kvm_supported & VMM_MCG_SER_P))
		return 0;
	if (banks > VMM_MCE_NR_BANKS)
		banks = VMM_MCE_NR_BANKS;
	return banks | (kvm_supported & (VMM_MCG_CTL_P | VMM_MCG_SER_P));
}

bool vmm_mce_encode(uint64_t mcg_cap, uint64_t gpa, bool action_required, struct vmm_mce *out)
{
	unsigned banks = (unsigned)(mcg_cap & 0xff);

	if (banks == 0)
		return false;
	out->bank = (uint8_t)(banks - 1);
	out->addr = gpa & ~0xfffull;
	out->misc = (2ull << 6) | 12;                /* physical address, 4 KiB granule */
	out->status = VMM_MCI_STATUS_VAL | VMM_MCI_STATUS_UC | VMM_MCI_STATUS_EN |
		      VMM_MCI_STATUS_MISCV | VMM_MCI_STATUS_ADDRV | VMM_MCI_STATUS_S;
	out->mcg_status = VMM_MCG_STATUS_MCIP | VMM_MCG_STATUS_RIPV;
	if (action_required) {
		out->status |= VMM_MCI_STATUS_AR | VMM_MCACOD_DATA_LOAD;
		out->mcg_status |= VMM_MCG_STATUS_EIPV;
	} else {
		out->status |= VMM_MCACOD_SCRUB;
	}
	return true;
}
