#!/usr/bin/env python3
"""The cost of containment: nym's monitor before and after the per-thread
seccomp filters (issue 19), in one run, alternating the two.

- boot: `nym boot` of the hello template's release image, `--count 1`,
  whole process, median of PAIRS paired runs;
- HTTP: `wrk -t1 -c8` on `GET /` of the http template's release image
  booted with `-p`, median of ROUNDS rounds each.

BEFORE is a nym built from the commit before the per-thread filters (one
filter for every thread, no argument rules), AFTER this tree's:

    git worktree add /tmp/base c0a281b && (cd /tmp/base && cargo build --release -p nym)
    cargo build --release -p nym
    scripts/bench_seccomp.py [/tmp/base/target/release/nym] [target/release/nym]

Each nym builds its own images (their guest ABIs differ). Prints a
Markdown section for BENCHMARKS.md.
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE = sys.argv[1] if len(sys.argv) > 1 else "/tmp/base/target/release/nym"
AFTER = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target", "release", "nym")
PAIRS = 20
ROUNDS = 3
SECONDS = 5


def run(nym, *args, cwd, target):
    env = dict(os.environ, CARGO_TARGET_DIR=target, NO_COLOR="1")
    p = subprocess.run([nym, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{nym} {' '.join(args)}: {p.returncode}\n{p.stderr[-2000:]}")
    return p


def image(nym, tmp, name, template):
    """A project of `template` made and built (release, kvm) by `nym`
    (one build directory per nym)."""
    target = os.path.join(tmp, "target-" + ("before" if nym == BEFORE else "after"))
    run(nym, "new", name, "--template", template, cwd=tmp, target=target)
    d = os.path.join(tmp, name)
    run(nym, "build", "--target", "kvm", "--release", cwd=d, target=target)
    return d, os.path.join(d, "target", "nym", "kvm", f"{name}.elf")


def boot_time(nym, d, elf):
    t = time.monotonic()
    p = subprocess.run([nym, "boot", elf, "--", "--count", "1"], cwd=d, capture_output=True)
    took = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"boot failed: {p.stderr.decode()[-1000:]}")
    return took


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_rate(nym, d, elf):
    port = free_port()
    server = subprocess.Popen([nym, "boot", elf, "-p", f"{port}:8080"], cwd=d,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 60
        while subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "2",
                              f"http://127.0.0.1:{port}/"]).returncode != 0:
            if time.time() > end:
                sys.exit("the server never answered")
            time.sleep(0.3)
        out = subprocess.run(["wrk", "-t1", "-c8", f"-d{SECONDS}s", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("Requests/sec:"):
                return float(line.split()[1])
        sys.exit("wrk printed no rate:\n" + out)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def main():
    for nym in (BEFORE, AFTER):
        if not os.path.exists(nym):
            sys.exit(f"no {nym}: see this script's documentation")
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        hello = {n: image(n, tmp, f"hello{i}", "hello") for i, n in enumerate((BEFORE, AFTER))}
        web = {n: image(n, tmp, f"web{i}", "http") for i, n in enumerate((BEFORE, AFTER))}
        boots = {BEFORE: [], AFTER: []}
        for _ in range(PAIRS):
            for n in (BEFORE, AFTER):
                boots[n].append(boot_time(n, *hello[n]))
        rates = {BEFORE: [], AFTER: []}
        for _ in range(ROUNDS):
            for n in (BEFORE, AFTER):
                rates[n].append(http_rate(n, *web[n]))
    b = {n: statistics.median(v) * 1000 for n, v in boots.items()}
    r = {n: statistics.median(v) for n, v in rates.items()}
    print(f"| monitor | boot hello, median of {PAIRS} (ms) | HTTP requests/s, median of {ROUNDS} |")
    print("|---|---|---|")
    print(f"| one filter for every thread (before) | {b[BEFORE]:.1f} | {r[BEFORE]:.0f} |")
    print(f"| a filter per thread, argument rules (after) | {b[AFTER]:.1f} | {r[AFTER]:.0f} |")
    print(f"| after / before | {b[AFTER] / b[BEFORE]:.2f} | {r[AFTER] / r[BEFORE]:.2f} |")


if __name__ == "__main__":
    main()
