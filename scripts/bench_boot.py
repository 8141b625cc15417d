#!/usr/bin/env python3
"""nym's monitor against Solo5's hvt tender, side by side: `nym boot` of
the hello template's release image (`--count 1`) and `solo5-hvt` running
Solo5's `test_hello`, alternated, each pair one after the other, whole
process (fork to exit) timed; then, under `strace -T`, the time each
spends inside KVM_RUN (summed per run; strace slows both alike). Prints a
Markdown section for BENCHMARKS.md.

Solo5 is not a dependency of nym: build it from its public source in a
scratch folder outside the repository (its configure wants
libseccomp-dev), then point this script at it:

    git clone https://github.com/Solo5/solo5 /tmp/solo5 && cd /tmp/solo5 \\
        && git checkout v0.9.3 && ./configure.sh && make
    cargo build --release && scripts/bench_boot.py --solo5 /tmp/solo5 [--pairs 30]
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")


def timed(cmd):
    start = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited with {r.returncode}")
    return took


def in_kvm_run(cmd):
    """Seconds inside KVM_RUN and how many KVM_RUNs (exits), per strace -T."""
    out = subprocess.run(["strace", "-f", "-T", "-e", "trace=ioctl"] + cmd,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True).stderr
    runs = [float(m) for m in re.findall(r"KVM_RUN[^\n]*<([0-9.]+)>", out)]
    return sum(runs), len(runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--solo5", required=True, help="a built Solo5 source tree")
    ap.add_argument("--pairs", type=int, default=30)
    a = ap.parse_args()
    tender = os.path.join(a.solo5, "tenders", "hvt", "solo5-hvt")
    hello = os.path.join(a.solo5, "tests", "test_hello", "test_hello.hvt")
    for f in (tender, hello, NYM):
        if not os.path.exists(f):
            sys.exit(f"{f} is missing (see this script's help)")
    tmp = tempfile.mkdtemp()
    subprocess.run([NYM, "new", "hello", "--template", "hello"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = os.path.join(tmp, "hello")
    subprocess.run([NYM, "build", "--target", "kvm", "--release"], cwd=d, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    image = os.path.join(d, "target", "nym", "kvm", "hello.elf")
    nym = [NYM, "boot", image, "--", "--count", "1"]
    solo5 = [tender, hello]
    # Warm both (page cache, first exec).
    timed(nym), timed(solo5)
    pairs = [(timed(nym), timed(solo5)) for _ in range(a.pairs)]
    n_ms = statistics.median(p[0] for p in pairs) * 1e3
    s_ms = statistics.median(p[1] for p in pairs) * 1e3
    ratio = statistics.median(p[0] / p[1] for p in pairs)
    runs = [(in_kvm_run(nym), in_kvm_run(solo5)) for _ in range(max(5, a.pairs // 4))]
    n_run = statistics.median(r[0][0] for r in runs) * 1e3
    s_run = statistics.median(r[1][0] for r in runs) * 1e3
    n_exits = statistics.median(r[0][1] for r in runs)
    s_exits = statistics.median(r[1][1] for r in runs)
    print("### nym's monitor and Solo5's hvt, side by side\n")
    print(f"Command: `cargo build --release && scripts/bench_boot.py --solo5 SOLO5 --pairs {a.pairs}`"
          " (Solo5 v0.9.3 built from source outside the repository; hello release image,"
          f" `--count 1`; {a.pairs} alternating pairs, whole process; KVM_RUN under `strace -T`,"
          f" {len(runs)} runs each)\n")
    print("| | nym boot hello | solo5-hvt test_hello | nym / Solo5 |")
    print("|---|---|---|---|")
    print(f"| whole process, median | {n_ms:.1f} ms | {s_ms:.1f} ms | {ratio:.2f} (median of the pairs' ratios) |")
    print(f"| inside KVM_RUN, median | {n_run:.2f} ms | {s_run:.2f} ms | {n_run / s_run:.2f} |")
    print(f"| KVM_RUN calls (exits to user space) | {n_exits:.0f} | {s_exits:.0f} | |")


if __name__ == "__main__":
    main()
