#!/usr/bin/env python3
"""The same graph on every target, measured in one run (release builds):

- block throughput: sequential writes (then a flush) and reads of 4 KiB and
  64 KiB requests through `block::file`, in-process (a host file), in
  nym's monitor (its block hypercalls), and as virtio-blk under QEMU's
  microvm (virtio-mmio) and q35 (virtio-pci); timed inside the program by
  its platform's clock (scripts/bench_block/);
- HTTP requests/s of the http template (`wrk -t1 -c8` on `GET /`) on kvm,
  qemu microvm and qemu q35, through each one's port forwarding.

Guest code runs about a thousand times slower than host code on these
nested-KVM machines (BENCHMARKS.md): compare guests with guests. Prints a
Markdown section for BENCHMARKS.md.

    cargo build --release && scripts/bench_targets.py [--conns N] [--http-only]
"""
import os, re, shutil, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")
ENV = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"))
SECONDS = 5
# wrk's connections (`--conns N`): the http template's guest takes a burst
# of eight, but refuses more with a reset while they wait (smoltcp answers
# a SYN no listening socket takes with RST); on a loaded machine -c8 can
# measure refusals rather than requests.
CONNS = int(sys.argv[sys.argv.index("--conns") + 1]) if "--conns" in sys.argv else 8
# `--http-only`: skip the block rows.
HTTP_ONLY = "--http-only" in sys.argv
# Request size -> MiB moved: fewer small requests, each is a guest exit.
SIZES = [(4096, 2), (65536, 16)]


def nym(*args, cwd, **kw):
    return subprocess.run([NYM, *args], cwd=cwd, env=ENV, capture_output=True, text=True, **kw)


def project(tmp, name, template):
    nym("new", name, "--template", template, cwd=tmp)
    return os.path.join(tmp, name)


def block_project(tmp):
    d = project(tmp, "blockbench", "hello")
    here = os.path.join(ROOT, "scripts", "bench_block")
    shutil.copy(os.path.join(here, "lib.rs"), os.path.join(d, "src", "lib.rs"))
    shutil.copy(os.path.join(here, "unikernel.nym"), os.path.join(d, "unikernel.nym"))
    return d


def unix_program(d):
    """The release program `nym build --target unix --release` writes: the
    in-process stack, optimised, outside nym (nym runs in-process builds
    in debug, for hot reload)."""
    out = nym("build", "--target", "unix", "--release", cwd=d)
    m = re.search(r"built (\S+)", out.stderr + out.stdout)
    if out.returncode != 0 or not m:
        sys.exit(f"nym build --target unix --release:\n{out.stderr}")
    return os.path.join(d, m.group(1))


def block_rates(d, target_args, disk, chunk, mib):
    keys = ["--chunk", str(chunk), "--mib", str(mib)]
    if target_args:
        out = nym("run", "--release", *target_args, "--block", disk, "--", *keys, cwd=d)
    else:
        # block::file's own path (bench.img) is the disk in-process.
        out = subprocess.run([unix_program(d), *keys], cwd=d, env=ENV,
                             capture_output=True, text=True)
    m = re.search(r"write ([\d.]+) MB/s read ([\d.]+) MB/s", out.stdout)
    if not m:
        sys.exit(f"no rates from {target_args}:\n{out.stdout}\n{out.stderr}")
    return float(m.group(1)), float(m.group(2))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_rate(d, target_args):
    port = free_port()
    p = subprocess.Popen([NYM, "run", "--release", *target_args, "-p", f"{port}:8080"],
                         cwd=d, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 300
        while time.time() < end:
            r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-m", "2",
                                f"http://127.0.0.1:{port}/"])
            if r.returncode == 0:
                break
            time.sleep(0.5)
        else:
            sys.exit(f"the http template never answered on {target_args}")
        out = subprocess.run(["wrk", "-t1", f"-c{CONNS}", f"-d{SECONDS}s",
                              f"http://127.0.0.1:{port}/"], capture_output=True, text=True).stdout
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if not m:
            sys.exit("wrk printed no rate:\n" + out)
        return float(m.group(1))
    finally:
        p.send_signal(2)
        p.wait(timeout=30)


def main():
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       stdout=subprocess.DEVNULL)
    tmp = tempfile.mkdtemp(prefix="nym-bench-")
    d = block_project(tmp)
    places = [
        ("in-process (release program), `block::file`", []),
        ("kvm, the monitor's block hypercalls", ["--target", "kvm"]),
        ("qemu microvm, virtio-blk (mmio)", ["--target", "qemu"]),
        ("qemu q35, virtio-blk (pci)", ["--target", "qemu", "--machine", "q35"]),
    ]
    rows = []
    for name, args in [] if HTTP_ONLY else places:
        cells = []
        for chunk, mib in SIZES:
            w, r = block_rates(d, args, f"bench-{len(rows)}.img", chunk, mib)
            cells += [w, r]
        rows.append((name, cells))
    web = project(tmp, "web", "http")
    http = [(name, http_rate(web, args)) for name, args in [
        ("kvm (monitor, port forwarding)", ["--target", "kvm"]),
        ("qemu microvm (virtio-net mmio, user network)", ["--target", "qemu"]),
        ("qemu q35 (virtio-net pci, user network)", ["--target", "qemu", "--machine", "q35"]),
    ]]
    shutil.rmtree(tmp, ignore_errors=True)
    print("## Block and HTTP on every target (issue: one graph, every target)\n")
    print("`cargo build --release && scripts/bench_targets.py`: release builds; block "
          "rates timed inside the program by its clock, sequential requests, "
          f"{', '.join(f'{c >> 10} KiB requests over {m} MiB' for c, m in SIZES)}; "
          f"HTTP `wrk -t1 -c{CONNS} -d{SECONDS}s` on `GET /` of the http template.\n")
    print("| block device | 4 KiB write MB/s | 4 KiB read MB/s | 64 KiB write MB/s | 64 KiB read MB/s |")
    print("|---|---|---|---|---|")
    for name, c in rows:
        print(f"| {name} | " + " | ".join(f"{x:.2f}" for x in c) + " |")
    print("\n| http template on | requests/s |")
    print("|---|---|")
    for name, rate in http:
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
