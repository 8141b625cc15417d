#!/usr/bin/env python3
"""gdb's `stepi` rate through nym's gdb stub and through Solo5's
(`solo5-hvt-debug --gdb`), in one run, alternating: gdb's Python drives
`stepi` in a loop and times it (gdb's own start and the connection are
outside the timing). Prints a Markdown section for BENCHMARKS.md.

Solo5 is not a dependency: build it from its public source in a scratch
folder outside the repository (as for scripts/bench_boot.py) and point
SOLO5 at it:

    git clone https://github.com/Solo5/solo5 /tmp/solo5-bench/solo5
    (cd /tmp/solo5-bench/solo5 && ./configure.sh && make)   # libseccomp-dev
    cargo build --release && SOLO5=/tmp/solo5-bench/solo5 scripts/bench_stepi.py
"""
import os, re, statistics, subprocess, sys, tempfile, time

from benchlib import NYM, STEPPER_LOOP_LINE, free_port, stepper_image

SOLO5 = os.environ.get("SOLO5", "/tmp/solo5-bench/solo5")
STEPS = int(os.environ.get("STEPS", "500"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
DRIVE = """
import gdb, time
gdb.execute("stepi", to_string=True)
t0 = time.perf_counter()
for _ in range({steps}):
    gdb.execute("stepi", to_string=True)
print("STEPS_PER_S %.1f" % ({steps} / (time.perf_counter() - t0)))
"""


def gdb_rate(target, elf, setup):
    script = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)
    script.write(DRIVE.format(steps=STEPS))
    script.close()
    args = ["gdb", "-batch", "-nx", "-ex", f"target remote {target}", *sum((["-ex", c] for c in setup), []),
            "-ex", f"source {script.name}", "-ex", "kill", elf]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    os.unlink(script.name)
    m = re.search(r"STEPS_PER_S ([\d.]+)", out.stdout)
    if not m:
        sys.exit(f"gdb did not step:\n{out.stdout}\n{out.stderr}")
    return float(m.group(1))


def nym_round(image):
    p = free_port()
    monitor = subprocess.Popen([NYM, "boot", image, "--gdb", f"127.0.0.1:{p}", "--", "--count", "100000000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    monitor.stderr.readline()  # waits for gdb
    try:
        return gdb_rate(f"127.0.0.1:{p}", image, [f"break lib.rs:{STEPPER_LOOP_LINE}", "continue", "delete"])
    finally:
        monitor.kill()
        monitor.wait()


def solo5_round(tender, kernel):
    p = free_port()
    monitor = subprocess.Popen([tender, "--gdb", f"--gdb-port={p}", kernel],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # It listens at once and takes one client: give it a moment, not a probe.
    time.sleep(0.5)
    try:
        return gdb_rate(f"127.0.0.1:{p}", kernel, ["break solo5_app_main", "continue", "delete"])
    finally:
        monitor.kill()
        monitor.wait()


def main():
    tender = os.path.join(SOLO5, "tenders", "hvt", "solo5-hvt-debug")
    kernel = os.path.join(SOLO5, "tests", "test_time", "test_time.hvt")
    for f in (tender, kernel):
        if not os.path.exists(f):
            sys.exit(f"{f} is missing: build Solo5 first (see this script's docstring)")
    image = stepper_image()
    nym, solo5 = [], []
    for _ in range(ROUNDS):
        nym.append(nym_round(image))
        solo5.append(solo5_round(tender, kernel))
        print(f"nym {nym[-1]:.0f}/s, solo5 {solo5[-1]:.0f}/s", file=sys.stderr)
    med = statistics.median
    print("| stub | stepi per second (median) | every round |")
    print("|---|---|---|")
    print(f"| nym's monitor (`nym boot --gdb`, debug image) | {med(nym):.0f} | {', '.join(f'{x:.0f}' for x in nym)} |")
    print(f"| Solo5 `solo5-hvt-debug --gdb` (test_time) | {med(solo5):.0f} | {', '.join(f'{x:.0f}' for x in solo5)} |")
    print(f"\nnym / Solo5: {med(nym) / med(solo5):.2f}× ({ROUNDS} alternating rounds of {STEPS} steps each).")


if __name__ == "__main__":
    main()
