#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Migration state of QEMU's PTA model (driver/qemu/0002-hw-arm-Add-the-ptrack-Page-Tracking-Agent-device.patch),
under qtest:

- `-dump-vmstate` lists the "ptrack-pta" VMStateDescription with the
  registers, ring indices, counters and per-context state;
- a QEMU whose PTA was programmed through its registers is migrated to a
  file (QMP `migrate` to exec:cat) and a second QEMU loads it (`-incoming
  defer`, `migrate-incoming`): every register of the device, and of every
  context, reads back the same;
- a QEMU with another -smp refuses the stream (CPU ids are cpu_index).

Ring entries, RING_PROD, the lost counters and CTX_STATUS.OVF move only
when TCG logs transitions; tests/qemu/migrate-pta.sh migrates the emulated
arm64 host in the middle of a tracked VM run for those.

usage: test_pta_migrate.py [QEMU]   (default /var/tmp/ptrack-qemu/build/...)
Exit status 0 only when every check passed.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

QEMU = (sys.argv[1] if len(sys.argv) > 1 else
        "/var/tmp/ptrack-qemu/build/qemu-system-aarch64")
BASE = 0x090C0000
NCPUS = 2
NCTX = 8
failures = []


def check(name, ok, detail=""):
    if ok:
        print("ok   " + name)
    else:
        failures.append(name + (": " + detail if detail else ""))
        print("FAIL " + failures[-1])


class Qemu:
    """A QEMU under qtest (stdio) with a QMP socket."""

    def __init__(self, tmp, name, smp=NCPUS, extra=()):
        self.sock = os.path.join(tmp, name + ".qmp")
        self.p = subprocess.Popen(
            [QEMU, "-M", "virt,gic-version=3,pta=on", "-cpu", "max",
             "-smp", str(smp), "-m", "256M", "-display", "none",
             "-nic", "none", "-accel", "qtest", "-qtest", "stdio",
             "-qmp", "unix:%s,server=on,wait=off" % self.sock] +
            list(extra),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.qmp = None
        for _ in range(100):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        self.qmp = socket.socket(socket.AF_UNIX)
        self.qmp.connect(self.sock)
        self.qf = self.qmp.makefile("rw")
        json.loads(self.qf.readline())          # greeting
        self.execute("qmp_capabilities")

    def execute(self, cmd, **args):
        self.qf.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        self.qf.flush()
        while True:
            line = self.qf.readline()
            if not line:
                raise RuntimeError("QMP closed on " + cmd)
            r = json.loads(line)
            if "return" in r or "error" in r:
                return r

    def wait_migration(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            if self.p.poll() is not None:
                return "exited"
            try:
                r = self.execute("query-migrate")
            except (RuntimeError, OSError):
                return "exited"
            st = r.get("return", {}).get("status")
            if st in ("completed", "failed", "cancelled"):
                return st
            time.sleep(0.05)
        return "timeout"

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        while True:
            out = self.p.stdout.readline()
            if not out:
                raise RuntimeError("qemu exited on: " + line)
            if out.startswith(("OK", "ERR", "FAIL")):
                return out.split()

    def rd(self, off):
        return int(self.cmd("readl 0x%x" % (BASE + off))[1], 16)

    def wr(self, off, val):
        self.cmd("writel 0x%x 0x%x" % (BASE + off, val))

    def close(self):
        try:
            self.qmp.close()
        except (AttributeError, OSError):
            pass
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def ctx(n, reg):
    return 0x100 + 0x40 * n + reg


# Every readable register: the globals and all of each context's.
REGS = ([0x010, 0x014, 0x018, 0x01C, 0x020, 0x024, 0x028, 0x030, 0x034,
         0x038, 0x040, 0x044, 0x04C] +
        [ctx(n, r) for n in range(NCTX)
         for r in (0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x18, 0x1C)])


def program(q):
    """Non-reset values in every register software can set."""
    q.wr(0x020, 0x40005000)
    q.wr(0x024, 0x1)
    q.wr(0x028, 12)
    q.wr(0x038, 777)
    q.wr(0x044, 0xB)
    q.wr(0x010, 1)
    for _ in range(3):
        q.wr(0x048, 1)                       # FLUSH_SEQ 3, FLUSH_DONE
    for n in range(NCTX):
        q.wr(ctx(n, 0x04), 0x1111 * (n + 1) & 0xFFFF)
        q.wr(ctx(n, 0x08), n % 4)
        q.wr(ctx(n, 0x00), [1, 3, 5, 7, 0, 4, 2, 6][n])


def test_dump_vmstate(tmp):
    path = os.path.join(tmp, "vmstate.json")
    r = subprocess.run([QEMU, "-M", "virt,gic-version=3,pta=on", "-cpu",
                        "max", "-display", "none", "-nic", "none",
                        "-accel", "qtest", "-dump-vmstate", path],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=60)
    check("-dump-vmstate runs", r.returncode == 0, r.stderr.strip())
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        check("-dump-vmstate JSON", False, str(e))
        return
    dev = d.get("ptrack-pta")
    check("ptrack-pta has a VMStateDescription", dev is not None)
    if not dev:
        return
    names = {f.get("field") for f in dev.get("Description", {})
             .get("Fields", [])}
    want = {"ncpus", "ctrl", "status", "lost", "ring_base", "ring_size",
            "prod", "cons", "thresh", "irq_status", "irq_mask", "flush_seq",
            "ctx"}
    check("vmstate fields " + " ".join(sorted(want)), want <= names,
          "missing %s" % sorted(want - names))


def test_migrate(tmp):
    stream = os.path.join(tmp, "pta.mig")
    a = Qemu(tmp, "src")
    try:
        program(a)
        before = {off: a.rd(off) for off in REGS}
        r = a.execute("migrate", uri="exec:cat > %s" % stream)
        check("migrate accepted", "return" in r, json.dumps(r))
        st = a.wait_migration()
        check("migration to a file completed", st == "completed", st)
    finally:
        a.close()
    check("registers programmed", before[0x010] == 1 and
          before[0x04C] == 3 and before[ctx(7, 0x00)] == 6,
          "CTRL %#x FLUSH_SEQ %#x" % (before[0x010], before[0x04C]))

    b = Qemu(tmp, "dst", extra=("-incoming", "defer"))
    try:
        r = b.execute("migrate-incoming", uri="exec:cat %s" % stream)
        check("migrate-incoming accepted", "return" in r, json.dumps(r))
        st = b.wait_migration()
        check("incoming migration completed", st == "completed", st)
        if st == "completed":
            after = {off: b.rd(off) for off in REGS}
            bad = ["%#x: %#x -> %#x" % (o, before[o], after[o])
                   for o in REGS if before[o] != after[o]]
            check("%d registers identical after migration" % len(REGS),
                  not bad, "; ".join(bad))
            # The restored device still works: a flush completes.
            b.wr(0x048, 1)
            check("FLUSH_SEQ advances after migration", b.rd(0x04C) == 4)
    finally:
        b.close()

    c = Qemu(tmp, "smp1", smp=1, extra=("-incoming", "defer"))
    try:
        c.execute("migrate-incoming", uri="exec:cat %s" % stream)
        st = c.wait_migration()
        check("a QEMU with -smp 1 refuses the stream",
              st in ("failed", "exited"), st)
    finally:
        c.close()


def main():
    with tempfile.TemporaryDirectory(prefix="pta-mig.") as tmp:
        test_dump_vmstate(tmp)
        test_migrate(tmp)
    if failures:
        print("test_pta_migrate: %d FAILED" % len(failures))
        return 1
    print("test_pta_migrate: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
