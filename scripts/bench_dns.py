#!/usr/bin/env python3
"""The DNS appliance (the dns template, issue 23): its stripped release kvm
image size, and queries per second in-process and on kvm in one run.

Each path is asked one fixed question (`www.example.test A`, one answer)
N times from Python's socket module, with a window of W queries in flight
(W=1: strictly one after another): over UDP, and over one TCP connection
(2-byte length prefixes, answered in order, RFC 7766). Every answer is
checked (id, QR, NOERROR, one answer). Paths:

- `nym run` (the in-process runner, host sockets; it builds the
  application in debug, as in-process runs always do);
- the standalone program of `nym build --target unix --release`;
- the release kvm image under `nym boot -p`: UDP through `-p PORT:53/udp`
  (the monitor's netd sends each datagram on, a source port per client)
  and TCP through `-p PORT:53`;
- the same image over a tap in a network namespace (`--tap`), UDP and TCP
  (needs root; skipped otherwise).

Prints a Markdown section for BENCHMARKS.md. `--only-forwarded` measures
the kvm `-p` row alone (no root needed).

    cargo build --release --bin nym && sudo scripts/bench_dns.py
"""
import argparse, os, socket, struct, subprocess, sys, tempfile, time

from benchlib import NYM, Proc, build, free_port, netns_up, sh

NS = "nym-bench-dns"
NAME = "www.example.test"


def query(qid):
    qname = b"".join(bytes([len(l)]) + l.encode() for l in NAME.split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)


def check(reply):
    """The id of a good answer to `query`; exits on anything else."""
    qid, flags, _, ancount = struct.unpack(">HHHH", reply[:8])
    if not flags & 0x8000 or flags & 0xF or ancount != 1:
        sys.exit(f"a bad answer: {reply!r}")
    return qid


def udp_rate(host, port, n, window, probe=False):
    """Answers per second over UDP, and datagrams lost (asked again after
    5 s without an answer). A probe gives up at its first loss."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0 if probe else 5.0)
    next_id, answered, lost, pending = 0, 0, 0, set()
    t0 = time.time()

    def send():
        nonlocal next_id
        qid = next_id & 0xFFFF
        next_id += 1
        pending.add(qid)
        s.sendto(query(qid), (host, port))

    for _ in range(min(window, n)):
        send()
    while answered < n:
        try:
            reply, _ = s.recvfrom(4096)
        except socket.timeout:
            if probe:
                sys.exit("no answer")
            lost += len(pending)
            pending.clear()
            for _ in range(min(window, n - answered)):
                send()
            continue
        qid = check(reply)
        if qid in pending:
            pending.discard(qid)
            answered += 1
            if answered + len(pending) < n:
                send()
    s.close()
    return answered / (time.time() - t0), lost


def tcp_rate(host, port, n, window, probe=False):
    """Answers per second over one TCP connection."""
    s = socket.create_connection((host, port), timeout=5 if probe else 60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""

    def send(qid):
        q = query(qid & 0xFFFF)
        s.sendall(struct.pack(">H", len(q)) + q)

    t0 = time.time()
    sent = 0
    for _ in range(min(window, n)):
        send(sent)
        sent += 1
    for i in range(n):
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit("the server closed the connection")
            buf += chunk
        size = struct.unpack(">H", buf[:2])[0]
        if check(buf[2:2 + size]) != i & 0xFFFF:
            sys.exit("answers out of order")
        buf = buf[2 + size:]
        if sent < n:
            send(sent)
            sent += 1
    s.close()
    return n / (time.time() - t0)


def wait_ready(proc, host, port, proto, netns=None, limit=300):
    """Until one query over `proto` is answered."""
    end = time.time() + limit
    while time.time() < end:
        if proc.p.poll() is not None:
            sys.exit(f"the server ended ({proc.p.returncode}) before answering")
        if measure(proto, host, port, 1, 1, netns, quiet=True) is not None:
            return
        time.sleep(0.5)
    sys.exit(f"no {proto} answer from {host}:{port}")


def measure(proto, host, port, n, window, netns=None, quiet=False):
    """(queries/s, lost) over `proto`, from inside `netns` if given."""
    args = ["--measure", proto, host, str(port), str(n), str(window)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, sys.executable, __file__] + args
    else:
        cmd = [sys.executable, __file__] + args
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode:
        if quiet:
            return None
        sys.exit(f"measuring {proto} on {host}:{port}: {out.stderr}")
    rate, lost = out.stdout.split()
    return float(rate), int(lost)


def main():
    if len(sys.argv) == 7 and sys.argv[1] == "--measure":
        proto, host, port, n, window = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
        probe = n == 1
        if proto == "udp":
            rate, lost = udp_rate(host, port, n, window, probe)
        else:
            rate, lost = tcp_rate(host, port, n, window, probe), 0
        print(rate, lost)
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=20000, help="queries per in-process measurement")
    ap.add_argument("--kvm-queries", type=int, default=2000, help="queries per kvm measurement")
    ap.add_argument("--window", type=int, default=1, help="queries in flight")
    ap.add_argument("--only-forwarded", action="store_true",
                    help="measure only the kvm image through -p (UDP and TCP)")
    a = ap.parse_args()
    tap = os.geteuid() == 0
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sh(NYM, "new", "dns", "--template", "dns", cwd=tmp, stdout=subprocess.DEVNULL,
           stderr=subprocess.DEVNULL)
        d = os.path.join(tmp, "dns")
        image = build(d, "kvm")
        stripped = os.path.join(tmp, "dns.stripped.elf")
        sh("strip", "-o", stripped, image)
        sizes = (os.path.getsize(image), os.path.getsize(stripped))
        program = None if a.only_forwarded else build(d, "unix")

        def run(label, cmd, host, port, protos, n, netns=None):
            """`port`: one for all `protos`, or a port per protocol."""
            proc = Proc(cmd, d, netns)
            try:
                result = {}
                for proto in protos:
                    at = port[proto] if isinstance(port, dict) else port
                    wait_ready(proc, host, at, proto, netns)
                    result[proto] = measure(proto, host, at, n, a.window, netns)
                rows.append((label, result, n))
            finally:
                proc.stop()

        if not a.only_forwarded:
            port = free_port(udp_too=True)
            run("`nym run` (in-process runner, debug application, host sockets)",
                [NYM, "run", "--", "--port", str(port)], "127.0.0.1", port,
                ["udp", "tcp"], a.queries)
            port = free_port(udp_too=True)
            run("standalone `nym build --target unix --release`", [program, "--port", str(port)],
                "127.0.0.1", port, ["udp", "tcp"], a.queries)
        ports = {"tcp": free_port(udp_too=True), "udp": free_port(udp_too=True)}
        while ports["udp"] == ports["tcp"]:
            ports["udp"] = free_port(udp_too=True)
        run("kvm, `nym boot -p PORT:53 -p PORT:53/udp`",
            [NYM, "boot", image, "-p", f"{ports['tcp']}:53", "-p", f"{ports['udp']}:53/udp"],
            "127.0.0.1", ports, ["udp", "tcp"], a.kvm_queries)
        if tap and not a.only_forwarded:
            netns_up(NS)
            try:
                run("kvm, `nym boot --tap` in a netns", [NYM, "boot", image, "--tap", "tap0", "--",
                    "--ipv4", "10.0.0.2/24"], "10.0.0.2", 53, ["udp", "tcp"], a.kvm_queries, NS)
            finally:
                subprocess.run(["ip", "netns", "del", NS])
    print("## The DNS appliance (issue 23)\n")
    flags = f"--queries {a.queries} --kvm-queries {a.kvm_queries} --window {a.window}"
    if a.only_forwarded:
        flags += " --only-forwarded"
    print(f"Command: `cargo build --release --bin nym && sudo scripts/bench_dns.py {flags}`"
          f" ({a.queries} queries per in-process measurement, {a.kvm_queries} on kvm, `{NAME} A` each,"
          f" {a.window} in flight)\n")
    print("| image | with debug info | stripped | the seeds' DNS appliance |\n|---|---|---|---|")
    print(f"| dns template, `nym build --target kvm --release` | {sizes[0] / 1024:.1f} KiB |"
          f" {sizes[1] / 1024:.1f} KiB | 184 KB |\n")
    print("| path | UDP queries/s | TCP queries/s (one connection) |\n|---|---|---|")
    for label, result, n in rows:
        def cell(proto):
            if proto not in result:
                return "— (not forwarded)"
            rate, lost = result[proto]
            return f"{rate:,.0f}" + (f" ({lost} lost, asked again)" if lost else "")
        print(f"| {label} | {cell('udp')} | {cell('tcp')} |")
    if not tap and not a.only_forwarded:
        print("\n(Not root: the tap row was skipped.)")


if __name__ == "__main__":
    main()
