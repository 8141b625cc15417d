#!/usr/bin/env python3
"""Latency of `nym lsp` (release build) on generated graphs of 5,000 and
50,000 lines: after a one-character edit, the time until the new
diagnostics arrive and the time a completion takes, p50 and p95 over 100
edits. Prints a Markdown section for BENCHMARKS.md.

    scripts/bench_lsp.py                 # 5,000 and 50,000 lines
    scripts/bench_lsp.py --lines 5000    # one size
    scripts/bench_lsp.py --server target/release/examples/serve
                                         # the server alone, for profiling
                                         # (cargo build --release -p nym-lsp --example serve)
"""
import argparse, json, os, subprocess, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")


class Client:
    def __init__(self, proc):
        self.p = proc

    def send(self, msg):
        body = json.dumps(msg).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.p.stdin.flush()

    def recv(self):
        length = 0
        while True:
            line = self.p.stdout.readline().strip()
            if not line:
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.p.stdout.read(length))

    def until(self, pred):
        while True:
            m = self.recv()
            if pred(m):
                return m


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def measure(server, proj, size, top=False):
    """(lines, diagnostics ms, completion ms) for a graph of about `size`
    lines: a chain of `time::scaled` ending in the job, 100 edits of the
    job's `key("count", 3)` (or, `top`, of the first `factor = 2`, so that
    every statement after it is checked again), each followed by a
    completion in the job's key."""
    lines = ["let console = console::default();", "let clock = clock::mono();", "let t0 = time::default();"]
    last_t = size - 11
    for i in range(1, last_t + 1):
        lines.append(f"let t{i} = time::scaled(t{i - 1}, factor = 2);")
    lines.append(f'let j = job big::start(console, clock, t{last_t}, key("count", 3), key("pause", 100ms));')
    lines.append('register("big", [j]);')
    text = "\n".join(lines) + "\n"
    uri = "file://" + os.path.join(proj, "unikernel.nym")

    proc = subprocess.Popen(server, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    c = Client(proc)
    c.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
    c.until(lambda m: m.get("id") == 1)
    c.send({"jsonrpc": "2.0", "method": "textDocument/didOpen",
            "params": {"textDocument": {"uri": uri, "languageId": "nym", "version": 1, "text": text}}})
    c.until(lambda m: m.get("method") == "textDocument/publishDiagnostics")

    diag_ms, comp_ms = [], []
    last = len(lines) - 2  # the job line: `key("count", 3)` toggles between 3 and 4
    col = lines[last].index('", 3)') + 3
    edit_line, edit_col = (3, lines[3].index("factor = 2") + 9) if top else (last, col)
    for i in range(100):
        version = i + 2
        new = ("3" if top else "4") if i % 2 == 0 else ("2" if top else "3")
        t0 = time.perf_counter()
        c.send({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": {"line": edit_line, "character": edit_col},
                                          "end": {"line": edit_line, "character": edit_col + 1}}, "text": new}]}})
        c.until(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == version)
        diag_ms.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        c.send({"jsonrpc": "2.0", "id": 1000 + i, "method": "textDocument/completion",
                "params": {"textDocument": {"uri": uri}, "position": {"line": last, "character": col - 3}}})
        c.until(lambda m: m.get("id") == 1000 + i)
        comp_ms.append((time.perf_counter() - t0) * 1e3)
    c.send({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
    c.until(lambda m: m.get("id") == 2)
    c.send({"jsonrpc": "2.0", "method": "exit"})
    proc.wait(timeout=10)
    return len(lines), diag_ms, comp_ms


# p95 targets (issue 20) by graph size.
TARGETS = {5000: 20, 50000: 60}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, nargs="+", default=[5000, 50000])
    ap.add_argument("--server", help="a server binary to run instead of `nym lsp`")
    args = ap.parse_args()
    sizes = args.lines
    if args.server:
        server = [args.server]
    else:
        subprocess.run(["cargo", "build", "--release", "--bin", "nym", "--bin", "nym-studio"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = [NYM, "lsp"]
    # The project `nym new big` makes, as far as the server reads it: its
    # Cargo.toml names the crate, src/lib.rs has the hello job.
    proj = os.path.join(tempfile.mkdtemp(prefix="nym-bench-lsp-"), "big")
    os.makedirs(os.path.join(proj, "src"))
    with open(os.path.join(proj, "Cargo.toml"), "w") as f:
        f.write('[package]\nname = "big"\nversion = "0.1.0"\nedition = "2021"\n')
    with open(os.path.join(ROOT, "examples", "hello", "src", "lib.rs")) as src, \
            open(os.path.join(proj, "src", "lib.rs"), "w") as dst:
        dst.write(src.read())
    rows = [(size, "the job's key (near the end)", *measure(server, proj, size)) for size in sizes]
    rows += [(size, "the first factor (near the top)", *measure(server, proj, size, top=True)) for size in sizes]

    print("## Language server\n")
    print(f"Measured with `scripts/bench_lsp.py --lines {' '.join(map(str, sizes))}"
          f"{' --server ' + args.server if args.server else ''}` on {os.uname().nodename} "
          f"({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}: generated graphs, 100 one-character edits each.\n")
    print("| graph | one-character edit of | then | p50 | p95 | target (p95) |\n|---|---|---|---|---|---|")
    for size, where, n, diag_ms, comp_ms in rows:
        # The targets are for the edit of the job's key.
        target = TARGETS.get(size) if "key" in where else None
        for what, xs in (("diagnostics published", diag_ms), ("completion answered", comp_ms)):
            p95 = percentile(xs, 95)
            verdict = "" if target is None else f"≤ {target} ms ({'met' if p95 <= target else 'not met'})"
            print(f"| {n} lines | {where} | {what} | {percentile(xs, 50):.1f} ms | {p95:.1f} ms | {verdict} |")


if __name__ == "__main__":
    main()
