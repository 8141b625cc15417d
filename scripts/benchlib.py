"""What the bench scripts share: where nym is, the environment their
builds use, a free port, a project built to an image, a network namespace
with a tap, a process to stop, and the stepper guest the gdb benchmarks
step through. Imported by the scripts beside it."""
import os, socket, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")
# Projects the scripts make build into one shared target folder.
ENV = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "e2e"))


def sh(*args, **kw):
    """Runs a command with the builds' environment; fails on failure."""
    return subprocess.run(args, check=True, env=ENV, **kw)


def free_port(udp_too=False):
    """A TCP port free on loopback (and free for UDP on every address, with
    `udp_too`)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue


def build(d, target):
    """`nym build --release` of the project at `d`; the image's path."""
    out = subprocess.run([NYM, "build", "--target", target, "--release"], cwd=d, env=ENV,
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    name = os.path.basename(d)
    return os.path.join(d, "target", "nym", target, name + (".elf" if target == "kvm" else ""))


def netns_up(ns):
    """A fresh network namespace `ns` with a tap0 at 10.0.0.1/24."""
    subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    for cmd in (["ip", "netns", "add", ns],
                ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
                ["ip", "netns", "exec", ns, "ip", "tuntap", "add", "tap0", "mode", "tap"],
                ["ip", "netns", "exec", ns, "ip", "addr", "add", "10.0.0.1/24", "dev", "tap0"],
                ["ip", "netns", "exec", ns, "ip", "link", "set", "tap0", "up"]):
        subprocess.run(cmd, check=True)


class Proc:
    """A command run in the background (in `netns`, if given), quiet; `stop`
    interrupts it as a terminal would, then kills it after 10 s."""

    def __init__(self, cmd, cwd, netns=None):
        full = (["ip", "netns", "exec", netns] if netns else []) + cmd
        self.p = subprocess.Popen(full, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)

    def stop(self):
        self.p.send_signal(2)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


# The guest the gdb benchmarks step through: a loop long enough to step in.
STEPPER = """#![no_std]
use libos::Console;
pub async fn start(console: impl Console, count: u32) {
    let mut sum = 0u64;
    for i in 0..count {
        sum = sum.wrapping_add(u64::from(i));
        core::hint::black_box(sum);
    }
    let _ = console.log(if sum > 0 { "done" } else { "none" }).await;
}
"""
STEPPER_LOOP_LINE = 6  # `sum = sum.wrapping_add(...)`


def stepper_image():
    """Builds release nym and the stepper's debug kvm image; its path."""
    subprocess.run(["cargo", "build", "--release", "--bin", "nym"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tempfile.mkdtemp(prefix="nym-bench-stepper-")
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target", "bench"))
    subprocess.run([NYM, "new", "stepper"], cwd=work, env=env, check=True, stderr=subprocess.DEVNULL)
    proj = os.path.join(work, "stepper")
    with open(os.path.join(proj, "src", "lib.rs"), "w") as f:
        f.write(STEPPER)
    with open(os.path.join(proj, "unikernel.nym"), "w") as f:
        f.write('let j = job stepper::start(console::default(), key("count", 100000));\n'
                'register("stepper", [j]);\n')
    return subprocess.run([NYM, "build", "--target", "kvm"], cwd=proj, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()
