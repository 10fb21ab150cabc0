#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Migrates the emulated arm64 host, PTA and all, in the middle of a
tracked VM run, and checks that the run still passes.

QEMU A boots the patched kernel with -machine pta=on and runs scenario
pta-migrate (the PTA driver, then ptrack_kvm_test: a KVM guest whose dirty
pages come from the PTA, 0 false negatives required). After the test's
round 5, A is stopped and migrated to a file (QMP migrate to exec:cat) and
quits; QEMU B, with the same command line and -incoming defer, loads the
file and continues. The device's ring indices, contexts and counters must
come across (vmstate_pta in driver/qemu/0002-hw-arm-Add-the-ptrack-Page-Tracking-Agent-device.patch): a lost RING_PROD
or context would show as an impossible producer index, lost pages or a
stuck driver. Passes when B finishes the scenario with no failed step and
no kernel warning in either log.

usage: migrate-pta.py [vhe|nvhe]   (default vhe)
Needs tests/qemu/run-pta.sh to have run once: its initramfs list
($PTRACK_KWORK/pta/initramfs.list: the programs, the module and the
scenario files) is packed again here, so the scenario is the current one.
Run under `flock /var/tmp/ptrack-kernel.lock`, like run-pta.sh.
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

KWORK = os.environ.get("PTRACK_KWORK", "/var/tmp/ptrack-kernel")
QWORK = os.environ.get("PTRACK_QEMU_WORK", "/var/tmp/ptrack-qemu")
QEMU = os.path.join(QWORK, "build", "qemu-system-aarch64")
KIMAGE = os.environ.get("PTRACK_PTA_KIMAGE") or os.environ.get(
    "PTRACK_KIMAGE") or os.path.join(KWORK, "build-arm64/arch/arm64/boot/Image")
INITLIST = os.path.join(KWORK, "pta", "initramfs.list")
GEN_CPIO = os.path.join(KWORK, "build-arm64", "usr", "gen_init_cpio")
LOGDIR = os.path.join(KWORK, "pta")
SCENARIO = "pta-migrate"
MARK = re.compile(r"^round 5: ", re.M)
BAD = re.compile(r"Kernel panic|Oops|BUG:|WARNING:|Unable to handle|"
                 r"Internal error|Call trace:|kernel BUG")


def die(msg):
    print("MIGRATE FAIL: " + msg)
    sys.exit(1)


class Qmp:
    def __init__(self, path, proc):
        for _ in range(200):
            if os.path.exists(path) or proc.poll() is not None:
                break
            time.sleep(0.05)
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        json.loads(self.f.readline())
        self.execute("qmp_capabilities")

    def execute(self, cmd, **args):
        self.f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP closed on " + cmd)
            r = json.loads(line)
            if "return" in r or "error" in r:
                if "error" in r:
                    raise RuntimeError("%s: %s" % (cmd, r["error"]))
                return r["return"]

    def wait_migration(self, timeout):
        end = time.time() + timeout
        while time.time() < end:
            r = self.execute("query-migrate")
            if r.get("status") in ("completed", "failed", "cancelled"):
                return r
            time.sleep(0.1)
        return {"status": "timeout"}

    def close(self):
        self.s.close()


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "vhe"
    if mode not in ("vhe", "nvhe"):
        die("mode must be vhe or nvhe")
    for f in (QEMU, KIMAGE, INITLIST, GEN_CPIO):
        if not os.path.exists(f):
            die("missing %s (build.sh / run-pta.sh first)" % f)
    with open(INITLIST) as f:
        if "/etc/scenarios/%s " % SCENARIO not in f.read():
            die("%s has no %s: run tests/qemu/run-pta.sh once"
                % (INITLIST, SCENARIO))
    append = "console=ttyAMA0 panic=-1 ptrack.scenario=" + SCENARIO
    if mode == "nvhe":
        append += " kvm-arm.mode=nvhe"
    tmp = tempfile.mkdtemp(prefix="pta-migrate.")
    stream = os.path.join(tmp, "host.mig")
    initrd = os.path.join(tmp, "initramfs.cpio")
    with open(initrd, "wb") as out:
        subprocess.run([GEN_CPIO, INITLIST], stdout=out, check=True)
    base = [QEMU, "-M", "virt,virtualization=on,gic-version=3,pta=on",
            "-cpu", "max", "-smp", "2", "-m", "1G", "-nographic",
            "-no-reboot", "-nic", "none", "-kernel", KIMAGE, "-initrd",
            initrd, "-append", append]
    log_a = os.path.join(LOGDIR, "%s-%s-src.log" % (SCENARIO, mode))
    log_b = os.path.join(LOGDIR, "%s-%s-dst.log" % (SCENARIO, mode))

    sock_a = os.path.join(tmp, "a.qmp")
    with open(log_a, "w") as out:
        a = subprocess.Popen(base + ["-qmp", "unix:%s,server=on,wait=off"
                                     % sock_a],
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
    try:
        end = time.time() + 900
        while not MARK.search(read(log_a)):
            if a.poll() is not None:
                die("source QEMU ended before round 5; see " + log_a)
            if time.time() > end:
                die("no round 5 in 900 s; see " + log_a)
            time.sleep(0.2)
        qa = Qmp(sock_a, a)
        t0 = time.time()
        qa.execute("stop")
        qa.execute("migrate", uri="exec:cat > " + stream)
        r = qa.wait_migration(300)
        t_save = time.time() - t0
        if r.get("status") != "completed":
            die("outgoing migration: %s" % json.dumps(r))
        qa.execute("quit")
        qa.close()
        a.wait(30)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    size = os.path.getsize(stream)

    sock_b = os.path.join(tmp, "b.qmp")
    with open(log_b, "w") as out:
        b = subprocess.Popen(base + ["-qmp", "unix:%s,server=on,wait=off"
                                     % sock_b, "-incoming", "defer"],
                             stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT)
    try:
        qb = Qmp(sock_b, b)
        t0 = time.time()
        qb.execute("migrate-incoming", uri="exec:cat " + stream)
        r = qb.wait_migration(300)
        t_load = time.time() - t0
        if r.get("status") != "completed":
            die("incoming migration: %s" % json.dumps(r))
        qb.execute("cont")
        qb.close()
        # A passing run ends in well under a minute after the restore.
        b.wait(300)
    except subprocess.TimeoutExpired:
        die("destination did not finish in 300 s; see " + log_b)
    finally:
        if b.poll() is None:
            b.kill()
            b.wait()
    os.unlink(stream)
    os.unlink(initrd)
    os.rmdir(tmp)

    text_a, text_b = read(log_a), read(log_b)
    for name, text in (("source", text_a), ("destination", text_b)):
        m = BAD.search(text)
        if m:
            die("kernel problem in the %s log: %s" % (name, m.group(0)))
    done = re.findall(r"PTRACK-SCENARIO-DONE .*pass=(\d+) fail=(\d+)",
                      text_b)
    steps = re.findall(r"PTRACK-STEP \d+ (?:PASS|FAIL) .*", text_a + text_b)
    for s in steps:
        print("  " + s.strip())
    if not done:
        die("the scenario did not finish after the restore; see " + log_b)
    npass, nfail = int(done[-1][0]), int(done[-1][1])
    # The tracked run straddles the migration: its PASS is in B's log.
    if not re.search(r"PTRACK-STEP \d+ PASS rc=0 /bin/ptrack_kvm_test",
                     text_b) or "ptrack_kvm_test" in "".join(
                         re.findall(r"PTRACK-STEP \d+ PASS.*", text_a)):
        die("ptrack_kvm_test did not span the migration")
    if nfail or not npass:
        die("%d steps failed after the restore" % nfail)
    fneg = re.findall(r"PASS: (\d+) rounds, 0 false negatives", text_b)
    print("MIGRATE PASS (%s): stream %.1f MiB, save %.2f s, load %.2f s, "
          "%d steps passed, tracked run %s rounds with 0 false negatives"
          % (mode, size / 1048576.0, t_save, t_load, npass,
             fneg[0] if fneg else "?"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
