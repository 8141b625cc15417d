#!/usr/bin/env python3
"""The xen target in numbers, for BENCHMARKS.md: Xen 4.17 and its Linux
dom0 booting in QEMU (`nym dom0`, software emulation), then on that dom0
`xl create` to a guest's first console line and a whole `nym run` of
hello; and, in the same run, http requests/s and echo MB/s of the same
templates as release images on xen, kvm and qemu. Emulation sets Xen's
absolute speed, so read the guests' rates as ratios. Prints a Markdown
section.

    cargo build --release && scripts/bench_xen.py [--runs 5] [--debug]

(`NYM_BIN` names another nym binary.)

`--debug` measures debug images instead (quicker to build; the ratios
between targets are what to read).
"""
import os, re, socket, statistics, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_net import echo_rate, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.environ.get("NYM_BIN", os.path.join(ROOT, "target", "release", "nym"))
ENV = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"))
SECONDS = 10
PROFILE = [] if "--debug" in sys.argv else ["--release"]
ECHO_BYTES = 256 << 10


def project(tmp, template):
    subprocess.run([NYM, "new", template, "--template", template], cwd=tmp, env=ENV,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(tmp, template)


def requests_per_second(port):
    """GET / on one kept-alive connection for SECONDS: answers a second."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    n, end, buf = 0, time.time() + SECONDS, b""
    t0 = time.time()
    while time.time() < end:
        s.sendall(req)
        while b"Hello from nym!\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("the server closed the connection")
            buf += chunk
        buf = buf.split(b"Hello from nym!\n", 1)[1]
        n += 1
    s.close()
    return n / (time.time() - t0)


def serve(d, target, port, guest_port, env):
    p = subprocess.Popen([NYM, "run", "--target", target, *PROFILE, "-p",
                          f"{port}:{guest_port}", "--", "--port", str(guest_port)],
                         cwd=d, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    for line in p.stdout:
        if f"listening on port {guest_port}" in line:
            threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
            return p
    sys.exit(f"{target}: the server never listened")


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    with tempfile.TemporaryDirectory() as tmp:
        hello, http, echo = (project(tmp, t) for t in ("hello", "http", "echo"))
        for d in (hello, http, echo):
            for target in ("xen", "kvm", "qemu"):
                subprocess.run([NYM, "build", "--target", target, *PROFILE], cwd=d,
                               env=ENV, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        env = dict(ENV, NYM_XEN_DOM0=os.path.join(tmp, "dom0"))
        t0 = time.time()
        dom0 = subprocess.Popen([NYM, "dom0"], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in dom0.stderr:
            if "dom0 is up" in line:
                break
        boot = time.time() - t0
        threading.Thread(target=lambda: [None for _ in dom0.stderr], daemon=True).start()
        created, first, whole = [], [], []
        for _ in range(runs):
            t = time.time()
            out = subprocess.run([NYM, "run", "--target", "xen", *PROFILE, "--",
                                  "--count", "1"], cwd=hello, capture_output=True, text=True,
                                 env=dict(env, NYM_XEN_TRACE="1"))
            whole.append(time.time() - t)
            created += [float(x) for x in re.findall(r"created ([\d.]+) s after", out.stderr)]
            first += [float(x) for x in re.findall(r"first guest line ([\d.]+) s", out.stderr)]
        rates = {}
        for target in ("xen", "kvm", "qemu"):
            port = free_port()
            p = serve(http, target, port, 8080, env)
            rps = requests_per_second(port)
            p.terminate()
            p.wait(30)
            port = free_port()
            p = serve(echo, target, port, 7, env)
            mbs = echo_rate("127.0.0.1", port, total=ECHO_BYTES)
            p.terminate()
            p.wait(30)
            rates[target] = (rps, mbs)
        dom0.stdin.close()
        dom0.wait(30)
    med = statistics.median
    flags = f"--runs {runs}" + (" --debug" if not PROFILE else "")
    print(f"Measured with `scripts/bench_xen.py {flags}`, {time.strftime('%Y-%m-%d')}.\n")
    print("| what | median | min | max |\n|---|---|---|---|")
    print(f"| `nym dom0`: Xen and the Linux dom0 up (once) | {boot:.1f} s | | |")
    for label, xs in (("request to `xl create` done (domain made, paused)", created),
                      ("`xl create` to the guest's first console line", first),
                      ("whole `nym run --target xen` of hello `--count 1`", whole)):
        print(f"| {label} | {med(xs):.2f} s | {min(xs):.2f} s | {max(xs):.2f} s |")
    print("\n| target (same run) | http GET / (one connection) | echo |\n|---|---|---|")
    for t, (rps, mbs) in rates.items():
        kvm_rps, kvm_mbs = rates["kvm"]
        print(f"| {t} | {rps:.1f} req/s ({rps / kvm_rps:.2f}× kvm) | "
              f"{mbs:.3f} MB/s ({mbs / kvm_mbs:.2f}× kvm) |")


if __name__ == "__main__":
    main()
