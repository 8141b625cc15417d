#!/usr/bin/env python3
"""Simulation speed of `nym sim` (release nym): 2, 10 and 50 nodes, half
of them servers of the echo or http template and half clients (a small
project written here) that each connect to their server every 10 ms,
send a request and read the answer, for 60 simulated seconds. For each
size: simulated seconds per wall second, frames delivered, and wall time
per simulated frame (the run's wall time, build excluded, over the frames
delivered). Prints a Markdown section for BENCHMARKS.md.

    cargo build --release && scripts/bench_sim.py
"""
import os, re, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.environ.get("NYM", os.path.join(ROOT, "target", "release", "nym"))
SIZES = [2, 10, 50]
UNTIL = "60s"

CLIENT_LIB = r'''#![no_std]
extern crate alloc;
use alloc::{format, string::String};
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use libos::{Console, Flow, Stack, Time};

/// Connects to `server:port` every `every`, sends a request (an HTTP GET
/// when `http`), reads the answer; says how many every 1000.
pub async fn start(
    console: impl Console,
    stack: impl Stack,
    time: impl Time,
    server: String,
    port: u16,
    http: bool,
    every: Duration,
) -> Result<(), String> {
    let ip: Ipv4Addr = server.parse().map_err(|_| format!("{server} is not an address"))?;
    let to = SocketAddrV4::new(ip, port);
    let request: &[u8] = if http { b"GET / HTTP/1.0\r\n\r\n" } else { b"ping" };
    let mut done = 0u64;
    loop {
        if let Ok(mut flow) = stack.connect(to).await {
            if flow.write_all(request).await.is_ok() {
                let mut buf = [0u8; 2048];
                let mut got = 0;
                while let Ok(n) = flow.read(&mut buf).await {
                    got += n;
                    if n == 0 || (!http && got >= request.len()) {
                        break;
                    }
                }
                if got > 0 {
                    done += 1;
                    if done % 1000 == 0 {
                        let _ = console.log(&format!("{done} answers")).await;
                    }
                }
            }
            let _ = flow.close().await;
        }
        time.sleep(every).await;
    }
}
'''

CLIENT_GRAPH = '''let console = console::default();
let stack   = stack::direct(netif::default(), key("ipv4", "10.0.0.2/24"));
let load    = job client::start(console, stack, time::default(), key("server", "10.0.0.1"),
                               key("port", 7), key("http", false), key("every", 10ms));
register("client", [load]);
'''


def topology(kind, n):
    port = 8080 if kind == "http" else 7
    lines = [f'until = "{UNTIL}"', '[network]', 'latency = "1ms"']
    for i in range(n // 2):
        s, c = 2 * i + 1, 2 * i + 2
        lines += [f"[nodes.s{i:02}]", f'project = "{kind}"',
                  f'keys = {{ ipv4 = "10.0.0.{s}/24" }}',
                  f"[nodes.c{i:02}]", 'project = "client"',
                  f'keys = {{ ipv4 = "10.0.0.{c}/24", server = "10.0.0.{s}", port = {port}, '
                  f'http = {"true" if kind == "http" else "false"} }}']
    return "\n".join(lines) + "\n"


def main():
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, template in [("echo", "echo"), ("http", "http"), ("client", "hello")]:
            subprocess.run([NYM, "new", name, "--template", template], cwd=tmp, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(os.path.join(tmp, "client", "src", "lib.rs"), "w") as f:
            f.write(CLIENT_LIB)
        with open(os.path.join(tmp, "client", "unikernel.nym"), "w") as f:
            f.write(CLIENT_GRAPH)
        for kind in ["echo", "http"]:
            for n in SIZES:
                path = os.path.join(tmp, f"{kind}{n}.toml")
                with open(path, "w") as f:
                    f.write(topology(kind, n))
                out = subprocess.run([NYM, "sim", path], cwd=tmp, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                m = re.search(r"sim: ([\d.]+)s simulated in ([\d.]+) s .*frames: (\d+) sent, (\d+) delivered",
                              out.stderr)
                if not m:
                    sys.exit(f"nym sim {kind}{n}.toml failed:\n{out.stderr[-3000:]}")
                sim, wall, delivered = float(m.group(1)), float(m.group(2)), int(m.group(4))
                answers = sum(1 for l in out.stdout.splitlines() if "answers" in l) * 1000
                rows.append((kind, n, sim, wall, delivered, answers))
                print(f"{kind} {n}: {sim / wall:.1f} sim-s per wall-s, {delivered} frames, "
                      f"{wall / max(delivered, 1) * 1e6:.1f} us per frame", file=sys.stderr)
    print("| example | nodes | simulated | wall | simulated s per wall s | frames delivered | wall per frame |")
    print("|---|---|---|---|---|---|---|")
    for kind, n, sim, wall, delivered, _ in rows:
        print(f"| {kind} | {n} | {sim:.0f} s | {wall:.2f} s | {sim / wall:.1f} | {delivered} | "
              f"{wall / max(delivered, 1) * 1e6:.1f} µs |")


if __name__ == "__main__":
    main()
