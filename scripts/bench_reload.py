#!/usr/bin/env python3
"""Hot reload latency of `nym run --watch` (release nym) on the http
template: 10 edits of the page text in src/lib.rs; for each, the build and
swap times nym reports, and the save-to-new-code time a client polling
`GET /` every 2 ms observes. Prints a Markdown section for BENCHMARKS.md.

    cargo build --release && scripts/bench_reload.py
"""
import os, re, socket, statistics, subprocess, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")
EDITS = 10


def get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode()


def main():
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([NYM, "new", "bench", "--template", "http"], cwd=tmp, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        proj = os.path.join(tmp, "bench")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = subprocess.Popen([NYM, "run", "--watch", "--", "--port", str(port)], cwd=proj,
                             env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        reports = []
        ready = threading.Event()

        def read():
            for line in p.stderr:
                if "watching" in line:
                    ready.set()
                m = re.search(r"reloaded: build (\d+) ms, swap ([\d.]+) ms", line)
                if m:
                    reports.append((float(m.group(1)) / 1e3, float(m.group(2))))

        threading.Thread(target=read, daemon=True).start()
        ready.wait(600)
        lib = os.path.join(proj, "src", "lib.rs")
        text = open(lib).read()
        current = "Hello from nym!"
        while get(port) != current + "\n":
            time.sleep(0.05)
        seen = []
        for i in range(EDITS):
            new = f"Edit number {i}!"
            text = text.replace(current, new)
            t0 = time.monotonic()
            with open(lib, "w") as f:
                f.write(text)
            while get(port) != new + "\n":
                time.sleep(0.002)
            seen.append(time.monotonic() - t0)
            current = new
            time.sleep(0.3)
        p.send_signal(2)
        p.wait(10)
    builds = [b for b, _ in reports]
    swaps = [s for _, s in reports]
    med = statistics.median
    print("## Hot reload (`nym run --watch`, http template)\n")
    print("Command: `cargo build --release && scripts/bench_reload.py`\n")
    print(f"{EDITS} edits of the page text in src/lib.rs, each saved once; median (max):\n")
    print("| | median | max |")
    print("|---|---|---|")
    print(f"| build (cargo, incremental, as nym reports it) | {med(builds)*1e3:.0f} ms | {max(builds)*1e3:.0f} ms |")
    print(f"| swap (stop jobs, start new ones on the kept devices) | {med(swaps):.2f} ms | {max(swaps):.2f} ms |")
    print(f"| save to new text served (client polling every 2 ms) | {med(seen)*1e3:.0f} ms | {max(seen)*1e3:.0f} ms |")


if __name__ == "__main__":
    main()
