#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Register-level conformance test of QEMU's PTA model (driver/qemu/
0002-*.patch) against driver/pta/SPEC.md, through QEMU's qtest
protocol: identification, reset values, access types and masks, ring
configuration rules, RING_CONS validation, flush completion, interrupt
status W1C, context registers, 64-bit accesses and software reset.
Logging itself needs TCG stage-2 walks and is tested in the arm64 test bed
(tests/qemu/run-pta.sh).

usage: test_pta_regs.py [QEMU]   (default /var/tmp/ptrack-qemu/build/...)
Exit status 0 only when every check passed.
"""
import subprocess
import sys

QEMU = (sys.argv[1] if len(sys.argv) > 1 else
        "/var/tmp/ptrack-qemu/build/qemu-system-aarch64")
BASE = 0x090C0000
NCPUS = 2
failures = []


class QTest:
    def __init__(self):
        self.p = subprocess.Popen(
            [QEMU, "-M", "virt,gic-version=3,pta=on", "-cpu", "max",
             "-smp", str(NCPUS), "-m", "256M", "-display", "none",
             "-nic", "none", "-accel", "qtest", "-qtest", "stdio"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        while True:
            out = self.p.stdout.readline()
            if not out:
                raise RuntimeError("qemu exited on: " + line)
            if out.startswith("OK") or out.startswith("ERR") or \
               out.startswith("FAIL"):
                return out.split()

    def rd(self, off, width=32):
        r = self.cmd("read%s 0x%x" % ("l" if width == 32 else "q",
                                       BASE + off))
        return int(r[1], 16)

    def wr(self, off, val, width=32):
        self.cmd("write%s 0x%x 0x%x" % ("l" if width == 32 else "q",
                                         BASE + off, val))

    def close(self):
        self.p.stdin.close()
        self.p.kill()
        self.p.wait()


def check(name, got, want):
    if got != want:
        failures.append("%s: got %#x, want %#x" % (name, got, want))
        print("FAIL", failures[-1])
    else:
        print("ok   %s = %#x" % (name, got))


def ctx(n, reg):
    return 0x100 + 0x40 * n + reg


def main():
    q = QTest()
    try:
        # 3.1 identification
        check("ID", q.rd(0x000), 0x50544131)
        check("VERSION", q.rd(0x004), 0x00010000)
        caps = q.rd(0x008)
        check("CAPS.NUM_CTX", caps & 0xFF, 8)
        check("CAPS.NUM_CPUS", (caps >> 8) & 0xFF, NCPUS)
        check("CAPS.MAX_RING_LOG2", (caps >> 16) & 0x1F, 20)
        check("CAPS.VMID16|BLOCKS", (caps >> 24) & 3, 3)
        check("CPU_MPIDR(1)", q.rd(0x808), 1)
        check("CPU_MPIDR(2) beyond NUM_CPUS", q.rd(0x810), 0)

        # reset values, unlisted offsets
        for off, name in [(0x010, "CTRL"), (0x014, "STATUS"),
                          (0x018, "LOST_LO"), (0x028, "RING_SIZE"),
                          (0x030, "RING_PROD"), (0x034, "RING_CONS"),
                          (0x040, "IRQ_STATUS"), (0x044, "IRQ_MASK"),
                          (0x04C, "FLUSH_SEQ"), (0x00C, "RES0 0x00C"),
                          (0x03C, "RES0 0x03C"), (ctx(0, 0), "CTX0_CTRL")]:
            check(name + " reset", q.rd(off), 0)

        # enabling with an invalid ring size fails with CFG_ERR
        q.wr(0x010, 1)
        check("CTRL.EN without ring", q.rd(0x010) & 1, 0)
        check("STATUS.CFG_ERR", q.rd(0x014), 1 << 3)
        q.wr(0x028, 7)                       # below the minimum of 8
        q.wr(0x010, 1)
        check("CTRL.EN with LOG2=7", q.rd(0x010) & 1, 0)

        # ring configuration
        q.wr(0x020, 0x40001234)
        q.wr(0x024, 0x1)
        check("RING_BASE_LO low bits RES0", q.rd(0x020), 0x40001000)
        check("RING_BASE 64-bit read", q.rd(0x020, 64), 0x140001000)
        q.wr(0x028, 8)
        q.wr(0x010, 1)
        check("STATUS enabled, CFG_ERR cleared", q.rd(0x014), 1)
        q.wr(0x028, 9)
        check("RING_SIZE ignored while enabled", q.rd(0x028), 8)
        q.wr(0x020, 0x50000000)
        check("RING_BASE ignored while enabled", q.rd(0x020), 0x40001000)

        # RING_CONS: fill must stay <= N and never go backwards
        q.wr(0x034, 5)
        check("RING_CONS ahead of RING_PROD ignored", q.rd(0x034), 0)
        q.wr(0x034, 0xFFFFFFFF)
        check("RING_CONS behind ignored", q.rd(0x034), 0)

        # interrupts and flush
        q.wr(0x044, 0xFF)
        check("IRQ_MASK RES0 bits", q.rd(0x044), 0xF)
        q.wr(0x048, 1)
        check("FLUSH_SEQ after a flush", q.rd(0x04C), 1)
        check("FLUSH reads not busy", q.rd(0x048), 0)
        check("STATUS.FLUSH_BUSY", q.rd(0x014) & 4, 0)
        check("IRQ_STATUS.FLUSH_DONE", q.rd(0x040), 1 << 2)
        q.wr(0x040, 0x1)
        check("IRQ_STATUS W1C of another bit", q.rd(0x040), 1 << 2)
        q.wr(0x040, 0x4)
        check("IRQ_STATUS W1C", q.rd(0x040), 0)
        q.wr(0x038, 100)
        check("IRQ_THRESH", q.rd(0x038), 100)

        # context registers
        q.wr(ctx(3, 0x00), 0xFF)
        check("CTX_CTRL RES0 bits", q.rd(ctx(3, 0x00)), 7)
        q.wr(ctx(3, 0x04), 0x12345)
        check("CTX_VMID 16 bits", q.rd(ctx(3, 0x04)), 0x2345)
        q.wr(ctx(3, 0x08), 0xFFFFFFFF)
        q.wr(ctx(3, 0x0C), 0xFFFFFFFF)
        check("CTX_CPUMASK_LO masked to NUM_CPUS", q.rd(ctx(3, 0x08)), 3)
        check("CTX_CPUMASK_HI masked to NUM_CPUS", q.rd(ctx(3, 0x0C)), 0)
        q.wr(ctx(3, 0x1C), 1)
        check("CTX_STATUS", q.rd(ctx(3, 0x1C)), 0)
        check("CTX_LOST", q.rd(ctx(3, 0x18)), 0)
        check("CTX_LOGGED", q.rd(ctx(3, 0x10), 64), 0)
        q.wr(ctx(3, 0x04), 0xABCD00000077, 64)
        check("64-bit write to a 32-bit pair", q.rd(ctx(3, 0x04)), 0x77)

        # software reset
        q.wr(0x010, 2)
        for off, name in [(0x010, "CTRL"), (0x014, "STATUS"),
                          (0x020, "RING_BASE_LO"), (0x028, "RING_SIZE"),
                          (0x038, "IRQ_THRESH"), (0x044, "IRQ_MASK"),
                          (0x04C, "FLUSH_SEQ"), (ctx(3, 0x00), "CTX3_CTRL"),
                          (ctx(3, 0x04), "CTX3_VMID")]:
            check(name + " after reset", q.rd(off), 0)
        # writing the ring registers zeroes both indices
        q.wr(0x028, 8)
        check("RING_PROD after ring setup", q.rd(0x030), 0)
    finally:
        q.close()
    if failures:
        print("test_pta_regs: %d FAILED" % len(failures))
        return 1
    print("test_pta_regs: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
