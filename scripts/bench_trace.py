#!/usr/bin/env python3
"""What the scheduler's tracing costs: HTTP requests/s of the http
template with tracing off, on (`nym run --trace FILE`), and with the
tracing code left out altogether (`NYM_TRACE_CODE=0`: jobs and devices
not wrapped), in-process, in one run, alternating the three; then on
kvm, off and on (the guest records, the monitor collects). Prints a
Markdown section for BENCHMARKS.md.

    cargo build --release && scripts/bench_trace.py [--rounds 3] [--no-kvm]
"""
import argparse, os, statistics, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_net import ENV, NYM, SECONDS, Proc, free_port, project, wait_port, wrk  # noqa: E402


def rate(d, args, env_extra=None, host_port=None):
    port = host_port or free_port()
    env = dict(ENV, **(env_extra or {}))
    cmd = [NYM, "run"] + args(port)
    p = subprocess.Popen(cmd, cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port("127.0.0.1", port, timeout=600)
        return wrk(f"http://127.0.0.1:{port}/")
    finally:
        p.terminate()
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            err = b""
        if b"written to" not in err and "--trace" in cmd:
            sys.exit("the trace was not written:\n" + err.decode(errors="replace"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-kvm", action="store_true", help="the in-process modes only")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    d = project(tmp, "http")
    trace = os.path.join(tmp, "t.json")
    modes = [
        ("in-process, tracing off", lambda p: ["--", "--port", str(p)], None),
        ("in-process, tracing on", lambda p: ["--trace", trace, "--", "--port", str(p)], None),
        ("in-process, no tracing code", lambda p: ["--", "--port", str(p)], {"NYM_TRACE_CODE": "0"}),
    ]
    got = {m[0]: [] for m in modes}
    for _ in range(a.rounds):
        for label, args, env in modes:
            got[label].append(rate(d, args, env))
    kvm = [
        ("kvm, tracing off", lambda p: ["--target", "kvm", "-p", f"{p}:8080"]),
        ("kvm, tracing on", lambda p: ["--target", "kvm", "--trace", trace, "-p", f"{p}:8080"]),
    ][: 0 if a.no_kvm else 2]
    for label, _ in kvm:
        got[label] = []
    for _ in range(a.rounds):
        for label, args in kvm:
            got[label].append(rate(d, args))
    print("### The scheduler's trace\n")
    flags = f"--rounds {a.rounds}" + (" --no-kvm" if a.no_kvm else "")
    print(f"Command: `cargo build --release && scripts/bench_trace.py {flags}`"
          f" (`wrk -t1 -c8 -d{SECONDS}s` on `GET /` of the http template; the modes"
          " alternate, median of the rounds; in-process the app builds in the dev profile,"
          " the kvm image too)\n")
    print("| run | HTTP requests/s (median) | ratio to tracing off | every round |")
    print("|---|---|---|---|")
    for group in (g for g in (modes, kvm) if g):
        base = statistics.median(got[group[0][0]])
        for m in group:
            r = statistics.median(got[m[0]])
            rounds = ", ".join(f"{x:,.0f}" for x in got[m[0]])
            print(f"| {m[0]} | {r:,.0f} | {r / base:.3f} | {rounds} |")


if __name__ == "__main__":
    main()
