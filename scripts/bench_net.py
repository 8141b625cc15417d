#!/usr/bin/env python3
"""HTTP requests/s (wrk, `GET /` of the http template) and TCP echo
throughput (the echo template) over each networking path nym has, in one
run, as ratios to the host's own stack. Release builds throughout:
standalone unix programs (`nym build --target unix --release`) and kvm
images (`nym build --target kvm --release`). Needs root for the tap in a
network namespace. Prints a Markdown section for BENCHMARKS.md.

    cargo build --release && sudo scripts/bench_net.py
"""
import os, shutil, socket, subprocess, sys, tempfile, threading, time

from benchlib import NYM, Proc, build, free_port, netns_up, sh

NS = "nym-bench"
SECONDS = 5
ECHO_BYTES = 20 << 20
# Guest code runs about a thousand times slower than the host on these
# nested-KVM machines (BENCHMARKS.md), so a kvm guest echoes less.
ECHO_BYTES_KVM = 256 << 10


def wait_port(host, port, netns=None, timeout=120):
    end = time.time() + timeout
    probe = ["curl", "-s", "-o", "/dev/null", "-m", "2", f"http://{host}:{port}/"]
    while time.time() < end:
        cmd = (["ip", "netns", "exec", netns] if netns else []) + probe
        if subprocess.run(cmd).returncode == 0:
            return
        time.sleep(0.3)
    sys.exit(f"nothing answers on {host}:{port}")


def wrk(url, netns=None):
    cmd = (["ip", "netns", "exec", netns] if netns else []) + [
        "wrk", "-t1", "-c8", f"-d{SECONDS}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    sys.exit("wrk printed no rate:\n" + out)


def echo_rate(host, port, netns=None, total=ECHO_BYTES):
    """MB/s through the echo server: send `total` bytes, read them back."""
    if netns:
        # Measure from inside the namespace with this same script.
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, __file__,
                              "--echo", host, str(port)], capture_output=True, text=True)
        return float(out.stdout.strip())
    s = socket.create_connection((host, port), timeout=60)
    data = os.urandom(1 << 14)
    t0 = time.time()

    def send():
        for _ in range(total // len(data)):
            s.sendall(data)

    t = threading.Thread(target=send)
    t.start()
    got = 0
    while got < total:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += len(chunk)
    t.join()
    s.close()
    return got / (time.time() - t0) / 1e6


def project(tmp, template, graph_edit=None):
    sh(NYM, "new", template, "--template", template, cwd=tmp,
       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = os.path.join(tmp, template)
    if graph_edit:
        g = os.path.join(d, "unikernel.nym")
        text = open(g).read()
        open(g, "w").write(text.replace("stack::socket()", graph_edit))
    return d


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--echo":
        print(echo_rate(sys.argv[2], int(sys.argv[3])))
        return
    if not shutil.which("wrk"):
        sh("apt-get", "install", "-y", "-qq", "wrk", stdout=subprocess.DEVNULL)
    tap = 'stack::direct(netif::tap("tap0"), key("ipv4", "10.0.0.2/24"))'
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [("in-process `stack::socket` (host kernel)", "unix", None, None),
                 ("in-process `stack::direct` over a tap (smoltcp)", "unix", tap, NS),
                 ("kvm guest via port forwarding (`-p`)", "kvm", None, None),
                 ("kvm guest via a tap (`--tap`)", "kvm", None, NS)]
        for label, target, edit, netns in paths:
            result = []
            for template, guest_port in (("http", 8080), ("echo", 7)):
                sub = os.path.join(tmp, f"{target}-{bool(edit)}-{bool(netns)}")
                os.makedirs(sub, exist_ok=True)
                d = project(sub, template, edit)
                exe = build(d, target)
                if netns:
                    netns_up(NS)
                port = free_port()
                if target == "kvm" and netns:
                    proc = Proc([NYM, "boot", exe, "--tap", "tap0", "--",
                                 "--ipv4", "10.0.0.2/24"], d, netns)
                    host, port = "10.0.0.2", guest_port
                elif target == "kvm":
                    proc = Proc([NYM, "boot", exe, "-p", f"{port}:{guest_port}"], d)
                    host = "127.0.0.1"
                elif netns:
                    proc = Proc([exe, "--port", str(guest_port)], d, netns)
                    host, port = "10.0.0.2", guest_port
                else:
                    proc = Proc([exe, "--port", str(port)], d)
                    host = "127.0.0.1"
                try:
                    if template == "http":
                        wait_port(host, port, netns)
                        result.append(wrk(f"http://{host}:{port}/", netns))
                    else:
                        time.sleep(2 if target == "kvm" else 0.5)
                        total = ECHO_BYTES_KVM if target == "kvm" else ECHO_BYTES
                        result.append(echo_rate(host, port, netns, total))
                finally:
                    proc.stop()
                    if netns:
                        subprocess.run(["ip", "netns", "del", NS])
            rows.append((label, *result))
    base_rps, base_mbs = rows[0][1], rows[0][2]
    print("## Networking (issue 5)\n")
    print("Command: `cargo build --release && sudo scripts/bench_net.py` (release builds;"
          f" `wrk -t1 -c8 -d{SECONDS}s` on `GET /` of the http template; {ECHO_BYTES >> 20} MB"
          f" ({ECHO_BYTES_KVM >> 10} KB for kvm) through the echo template, sent and read back"
          " at once)\n")
    print("| path | HTTP requests/s | ratio | echo MB/s | ratio |")
    print("|---|---|---|---|---|")
    for label, rps, mbs in rows:
        print(f"| {label} | {rps:,.0f} | {rps / base_rps:.3f} | {mbs:.1f} | {mbs / base_mbs:.3f} |")


if __name__ == "__main__":
    main()
