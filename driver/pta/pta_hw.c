// SPDX-License-Identifier: GPL-2.0
/*
 * Register layer of the Page Tracking Agent (SPEC.md): identification,
 * reset, ring setup, interrupts, and the struct pta_core_hw_ops the core
 * drives the device with.
 */
#include <linux/errno.h>
#include <linux/io.h>
#include <linux/iopoll.h>
#include <linux/kernel.h>

#include "pta_hw.h"

/* SPEC.md allows 1 ms for a reset or a flush; allow for emulation. */
#define PTA_POLL_US		10
#define PTA_TIMEOUT_US		20000

static void __iomem *pta_ctx_reg(struct pta_hw *hw, u32 ctx, u32 reg)
{
	return hw->base + PTA_CTX(ctx) + reg;
}

int pta_hw_init(struct pta_hw *hw, void __iomem *base)
{
	u32 id;

	hw->base = base;
	id = readl(base + PTA_ID);
	if (id != PTA_ID_MAGIC)
		return -ENODEV;
	hw->version = readl(base + PTA_VERSION);
	if (PTA_VERSION_MAJOR(hw->version) != 1)
		return -ENODEV;
	hw->caps = readl(base + PTA_CAPS);
	hw->nctx = min_t(u32, PTA_CAPS_NUM_CTX(hw->caps), PTA_MAX_CTX);
	hw->ncpus = min_t(u32, PTA_CAPS_NUM_CPUS(hw->caps), PTA_MAX_CPUS);
	hw->max_ring_log2 = PTA_CAPS_MAX_RING_LOG2(hw->caps);
	if (!hw->nctx || !hw->ncpus || hw->max_ring_log2 < PTA_MIN_RING_LOG2)
		return -ENODEV;
	return 0;
}

int pta_hw_reset(struct pta_hw *hw)
{
	u32 val;

	writel(PTA_CTRL_RESET, hw->base + PTA_CTRL);
	return readl_poll_timeout(hw->base + PTA_STATUS, val,
				  !(val & PTA_STATUS_RESET_BUSY), PTA_POLL_US,
				  PTA_TIMEOUT_US);
}

int pta_hw_start(struct pta_hw *hw, dma_addr_t ring, u32 ring_log2,
		 u32 thresh)
{
	writel(lower_32_bits(ring), hw->base + PTA_RING_BASE_LO);
	writel(upper_32_bits(ring), hw->base + PTA_RING_BASE_HI);
	writel(ring_log2, hw->base + PTA_RING_SIZE);
	writel(thresh, hw->base + PTA_IRQ_THRESH);
	writel(~0U, hw->base + PTA_IRQ_STATUS);
	writel(PTA_IRQ_FILL | PTA_IRQ_OVERFLOW | PTA_IRQ_ERROR,
	       hw->base + PTA_IRQ_MASK);
	writel(PTA_CTRL_EN, hw->base + PTA_CTRL);
	if (!(readl(hw->base + PTA_STATUS) & PTA_STATUS_ENABLED))
		return -EIO;
	return 0;
}

void pta_hw_stop(struct pta_hw *hw)
{
	writel(0, hw->base + PTA_IRQ_MASK);
	writel(0, hw->base + PTA_CTRL);
	/* Reset too: the device must not write the ring once it is freed. */
	if (pta_hw_reset(hw))
		pr_warn("pta: reset timed out\n");
}

u64 pta_hw_cpu_mpidr(struct pta_hw *hw, u32 id)
{
	u64 lo = readl(hw->base + PTA_CPU_MPIDR_LO(id));
	u64 hi = readl(hw->base + PTA_CPU_MPIDR_HI(id));

	return (hi << 32 | lo) & PTA_MPIDR_MASK;
}

/* Reads IRQ_STATUS and clears the causes it found. */
u32 pta_hw_irq_status_ack(struct pta_hw *hw)
{
	u32 status = readl(hw->base + PTA_IRQ_STATUS);

	if (status)
		writel(status, hw->base + PTA_IRQ_STATUS);
	return status;
}

u32 pta_hw_status(struct pta_hw *hw)
{
	return readl(hw->base + PTA_STATUS);
}

u64 pta_hw_lost(struct pta_hw *hw)
{
	u64 hi, lo;

	do {
		hi = readl(hw->base + PTA_LOST_HI);
		lo = readl(hw->base + PTA_LOST_LO);
	} while (hi != readl(hw->base + PTA_LOST_HI));
	return hi << 32 | lo;
}

/* --- struct pta_core_hw_ops ---------------------------------------------- */

static u32 pta_hw_read_prod(void *priv)
{
	struct pta_hw *hw = priv;

	return readl(hw->base + PTA_RING_PROD);
}

static void pta_hw_write_cons(void *priv, u32 cons)
{
	struct pta_hw *hw = priv;

	/* The core has ordered its ring reads with dma_mb(). */
	writel_relaxed(cons, hw->base + PTA_RING_CONS);
}

static void pta_hw_ctx_program(void *priv, u32 ctx,
			       const struct pta_ctx_cfg *cfg)
{
	struct pta_hw *hw = priv;
	u32 ctrl = 0;

	if (cfg->enable)
		ctrl |= PTA_CTX_CTRL_EN;
	if (cfg->all_cpus)
		ctrl |= PTA_CTX_CTRL_ALL_CPUS;
	if (cfg->vmid16)
		ctrl |= PTA_CTX_CTRL_VMID16;
	/* Filters first, so an enabled context never matches stale ones. */
	if (!cfg->enable)
		writel(ctrl, pta_ctx_reg(hw, ctx, PTA_CTX_CTRL));
	writel(cfg->vmid, pta_ctx_reg(hw, ctx, PTA_CTX_VMID));
	writel(lower_32_bits(cfg->cpumask),
	       pta_ctx_reg(hw, ctx, PTA_CTX_CPUMASK_LO));
	writel(upper_32_bits(cfg->cpumask),
	       pta_ctx_reg(hw, ctx, PTA_CTX_CPUMASK_HI));
	writel(ctrl, pta_ctx_reg(hw, ctx, PTA_CTX_CTRL));
	/* Read back: the device uses the setting once this returns. */
	readl(pta_ctx_reg(hw, ctx, PTA_CTX_CTRL));
}

static bool pta_hw_ctx_test_clear_ovf(void *priv, u32 ctx)
{
	struct pta_hw *hw = priv;
	u32 st = readl(pta_ctx_reg(hw, ctx, PTA_CTX_STATUS));

	if (!(st & PTA_CTX_STATUS_OVF))
		return false;
	writel(PTA_CTX_STATUS_OVF, pta_ctx_reg(hw, ctx, PTA_CTX_STATUS));
	return true;
}

static int pta_hw_flush(void *priv)
{
	struct pta_hw *hw = priv;
	u32 val;

	if (pta_hw_status(hw) & PTA_STATUS_DMA_ERR)
		return -EIO;
	/* Complete earlier stores (e.g. the hypervisor's DSB) first. */
	writel(PTA_FLUSH_REQ, hw->base + PTA_FLUSH);
	return readl_poll_timeout(hw->base + PTA_STATUS, val,
				  !(val & PTA_STATUS_FLUSH_BUSY), PTA_POLL_US,
				  PTA_TIMEOUT_US);
}

const struct pta_core_hw_ops pta_hw_core_ops = {
	.read_prod = pta_hw_read_prod,
	.write_cons = pta_hw_write_cons,
	.ctx_program = pta_hw_ctx_program,
	.ctx_test_clear_ovf = pta_hw_ctx_test_clear_ovf,
	.flush = pta_hw_flush,
};
