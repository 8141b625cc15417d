#!/usr/bin/env python3
"""The gdb stub's speed, through the stock gdb against a guest on /dev/kvm:
single steps per second (`stepi N`) and the round trip of a breakpoint
(`continue` to a breakpoint hit once per loop iteration). Prints a Markdown
section for BENCHMARKS.md.

    scripts/bench_gdb.py
"""
import os, subprocess, time

from benchlib import NYM, STEPPER_LOOP_LINE as LOOP_LINE, free_port, stepper_image


def session(image, commands, keys):
    p = free_port()
    monitor = subprocess.Popen([NYM, "boot", image, "--gdb", f"127.0.0.1:{p}", "--", *keys],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    monitor.stderr.readline()  # "waits for gdb"
    args = ["gdb", "-batch", "-nx", "-ex", f"target remote 127.0.0.1:{p}"]
    for c in commands:
        args += ["-ex", c]
    out = subprocess.run(args + [image], capture_output=True, text=True)
    monitor.wait(timeout=60)
    return out.stdout


def main():
    image = stepper_image()

    steps = 2000
    t0 = time.perf_counter()
    session(image, [f"break lib.rs:{LOOP_LINE}", "continue", "delete", f"stepi {steps}", "kill"], ["--count", "100000"])
    with_steps = time.perf_counter() - t0
    t0 = time.perf_counter()
    session(image, [f"break lib.rs:{LOOP_LINE}", "continue", "delete", "kill"], ["--count", "100000"])
    baseline = time.perf_counter() - t0
    step_rate = steps / max(with_steps - baseline, 1e-9)

    hits = 200
    t0 = time.perf_counter()
    session(image, [f"break lib.rs:{LOOP_LINE}", "continue", f"continue {hits}", "kill"], ["--count", "100000"])
    # `continue N` ignores the breakpoint N-1 times: each hit is still a
    # trap, a stop reply and a resume over the stub.
    with_hits = time.perf_counter() - t0
    round_trip = (with_hits - baseline) / hits

    print("## gdb stub (issue 4)\n")
    print(f"Measured with `scripts/bench_gdb.py` on {os.uname().nodename} ({os.cpu_count()} cores), "
          f"{time.strftime('%Y-%m-%d')}: the stock gdb in batch mode against a debug image in nym's monitor.\n")
    print("| what | result |\n|---|---|")
    print(f"| single steps (`stepi {steps}`) | {step_rate:.0f} instructions/s |")
    print(f"| breakpoint round trip (trap, stop reply, resume; `continue {hits}`) | {round_trip*1e3:.2f} ms |")
    print("\nEach step and each hit is a VM exit plus a gdb round trip over loopback; under this machine's "
          "nested KVM a VM exit alone costs 0.6–1.5 ms.")


if __name__ == "__main__":
    main()
