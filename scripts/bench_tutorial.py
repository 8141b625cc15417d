#!/usr/bin/env python3
"""`nym tutorial`, timed as a learner meets it (release build):

- from `nym tutorial start hello` to its first step checked and passed
  (the lesson laid out, the graph edited, then `nym tutorial check`,
  which checks the graph and builds and runs the program on a copy);
- `nym tutorial check` on a graph-only step (the checker lesson's first
  step, failing and passing), and on a run step once built (hello's first
  step, checked again).

Each is the median of RUNS runs; builds share target/e2e as the tests do,
so the first-step time is a warm build's, not a cold one's. Prints a
Markdown section for BENCHMARKS.md.

    cargo build --release && scripts/bench_tutorial.py
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")
ENV = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"), NO_COLOR="1")
RUNS = 5


def nym(*args, cwd, ok=(0,)):
    p = subprocess.run([NYM, *args], cwd=cwd, env=ENV, capture_output=True, text=True)
    if p.returncode not in ok:
        sys.exit(f"nym {' '.join(args)} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def timed(f):
    t = time.monotonic()
    f()
    return time.monotonic() - t


def edit(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, (path, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def first_step():
    with tempfile.TemporaryDirectory() as tmp:
        def go():
            nym("tutorial", "start", "hello", cwd=tmp)
            d = os.path.join(tmp, "nym-tutorial", "hello")
            edit(os.path.join(d, "unikernel.nym"), 'key("count", 3)', 'key("count", 5)')
            out = nym("tutorial", "check", cwd=d).stdout
            assert "passed" in out, out
        return timed(go)


def graph_step(solved):
    with tempfile.TemporaryDirectory() as tmp:
        nym("tutorial", "start", "checker", cwd=tmp)
        d = os.path.join(tmp, "nym-tutorial", "checker")
        if solved:
            edit(os.path.join(d, "unikernel.nym"), "consol::default()", "console::default()")
        ok = (0,) if solved else (1,)
        return timed(lambda: nym("tutorial", "check", "--step", "typo", cwd=d, ok=ok))


def run_step():
    with tempfile.TemporaryDirectory() as tmp:
        nym("tutorial", "start", "hello", cwd=tmp)
        d = os.path.join(tmp, "nym-tutorial", "hello")
        edit(os.path.join(d, "unikernel.nym"), 'key("count", 3)', 'key("count", 5)')
        nym("tutorial", "check", cwd=d)  # builds
        return timed(lambda: nym("tutorial", "check", "--step", "count", cwd=d))


def median(f):
    return statistics.median(f() for _ in range(RUNS))


def main():
    if not os.path.exists(NYM):
        sys.exit("build first: cargo build --release")
    first_step()  # warm the shared build
    rows = [
        ("`nym tutorial start hello` to its first step passed", median(first_step)),
        ("`check`, graph-only step, failing (checker/typo)", median(lambda: graph_step(False))),
        ("`check`, graph-only step, passing (checker/typo)", median(lambda: graph_step(True))),
        ("`check`, run step, built (hello/count: 5 greetings 100 ms apart)", median(run_step)),
    ]
    print("| what | median of %d |" % RUNS)
    print("|---|---|")
    for what, s in rows:
        print(f"| {what} | {s * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
