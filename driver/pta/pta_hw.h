/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Register layer of the Page Tracking Agent: offsets and fields of SPEC.md
 * section 3, and the accessors the core and the probe glue use.
 */
#ifndef PTA_HW_H
#define PTA_HW_H

#include <linux/bits.h>
#include <linux/io.h>
#include <linux/types.h>

#include "pta_core.h"

#define PTA_REG_SIZE		0x10000

#define PTA_ID			0x000
#define  PTA_ID_MAGIC		0x50544131	/* "PTA1" */
#define PTA_VERSION		0x004
#define  PTA_VERSION_MAJOR(v)	((v) >> 16)
#define  PTA_VERSION_MINOR(v)	((v) & 0xffff)
#define PTA_CAPS		0x008
#define  PTA_CAPS_NUM_CTX(c)	((c) & 0xff)
#define  PTA_CAPS_NUM_CPUS(c)	(((c) >> 8) & 0xff)
#define  PTA_CAPS_MAX_RING_LOG2(c) (((c) >> 16) & 0x1f)
#define  PTA_CAPS_VMID16	BIT(24)
#define  PTA_CAPS_BLOCKS	BIT(25)
#define PTA_CTRL		0x010
#define  PTA_CTRL_EN		BIT(0)
#define  PTA_CTRL_RESET		BIT(1)
#define PTA_STATUS		0x014
#define  PTA_STATUS_ENABLED	BIT(0)
#define  PTA_STATUS_RESET_BUSY	BIT(1)
#define  PTA_STATUS_FLUSH_BUSY	BIT(2)
#define  PTA_STATUS_CFG_ERR	BIT(3)
#define  PTA_STATUS_DMA_ERR	BIT(4)
#define PTA_LOST_LO		0x018
#define PTA_LOST_HI		0x01c
#define PTA_RING_BASE_LO	0x020
#define PTA_RING_BASE_HI	0x024
#define PTA_RING_SIZE		0x028
#define PTA_RING_PROD		0x030
#define PTA_RING_CONS		0x034
#define PTA_IRQ_THRESH		0x038
#define PTA_IRQ_STATUS		0x040
#define PTA_IRQ_MASK		0x044
#define  PTA_IRQ_FILL		BIT(0)
#define  PTA_IRQ_OVERFLOW	BIT(1)
#define  PTA_IRQ_FLUSH_DONE	BIT(2)
#define  PTA_IRQ_ERROR		BIT(3)
#define PTA_FLUSH		0x048
#define  PTA_FLUSH_REQ		BIT(0)
#define PTA_FLUSH_SEQ		0x04c

#define PTA_CTX(n)		(0x100 + 0x40 * (n))
#define PTA_CTX_CTRL		0x00
#define  PTA_CTX_CTRL_EN	BIT(0)
#define  PTA_CTX_CTRL_ALL_CPUS	BIT(1)
#define  PTA_CTX_CTRL_VMID16	BIT(2)
#define PTA_CTX_VMID		0x04
#define PTA_CTX_CPUMASK_LO	0x08
#define PTA_CTX_CPUMASK_HI	0x0c
#define PTA_CTX_LOGGED_LO	0x10
#define PTA_CTX_LOGGED_HI	0x14
#define PTA_CTX_LOST		0x18
#define PTA_CTX_STATUS		0x1c
#define  PTA_CTX_STATUS_OVF	BIT(0)

#define PTA_CPU_MPIDR_LO(i)	(0x800 + 8 * (i))
#define PTA_CPU_MPIDR_HI(i)	(0x804 + 8 * (i))
#define PTA_MPIDR_MASK		0xff00ffffffULL

#define PTA_MIN_RING_LOG2	8

struct pta_hw {
	void __iomem *base;
	u32 version;
	u32 caps;
	u32 nctx;
	u32 ncpus;
	u32 max_ring_log2;
};

int pta_hw_init(struct pta_hw *hw, void __iomem *base);
int pta_hw_reset(struct pta_hw *hw);
int pta_hw_start(struct pta_hw *hw, dma_addr_t ring, u32 ring_log2,
		 u32 thresh);
void pta_hw_stop(struct pta_hw *hw);
u64 pta_hw_cpu_mpidr(struct pta_hw *hw, u32 id);
u32 pta_hw_irq_status_ack(struct pta_hw *hw);
u32 pta_hw_status(struct pta_hw *hw);
u64 pta_hw_lost(struct pta_hw *hw);

extern const struct pta_core_hw_ops pta_hw_core_ops;

#endif /* PTA_HW_H */
