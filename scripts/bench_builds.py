#!/usr/bin/env python3
"""Builds as a user meets them (issue 20). Prints a Markdown section for
BENCHMARKS.md:

- the first `nym run` and the first `nym run --target kvm` of a new project
  (hello template, `--count 1`), with the shared build cache cold (a new
  `NYM_CACHE_DIR`) and warm (after another project ran), each first run a
  project of its own; what a project's `target/` and the cache hold;
- the SHA-256 of release images built by two "users" who share nothing but
  the sources and the toolchain: another project folder, another build
  cache, another copy of nym's sources (`NYM_SRC`) and another cargo home
  (a hard-linked copy of the registry, used offline).

    cargo build --release --bin nym && scripts/bench_builds.py [--runs 5]

`CARGO_TARGET_DIR` is removed from the environment: with it set, nym builds
everything there and no cache is shared.
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NYM = os.path.join(ROOT, "target", "release", "nym")


def env_for(**extra):
    env = dict(os.environ, NO_COLOR="1", **extra)
    env.pop("CARGO_TARGET_DIR", None)
    return env


def nym(args, cwd, env, check=True):
    out = subprocess.run([NYM, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and out.returncode != 0:
        sys.exit(f"nym {' '.join(args)} in {cwd} failed:\n{out.stderr}")
    return out


def timed(args, cwd, env):
    start = time.perf_counter()
    nym(args, cwd, env)
    return time.perf_counter() - start


def du(path):
    """Bytes of the files under path, a hard-linked file once."""
    total, seen = 0, set()
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            if (st.st_dev, st.st_ino) not in seen and not os.path.islink(os.path.join(dirpath, f)):
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def mib(n):
    return f"{n / 2**20:.1f} MiB"


def ms(s):
    return f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"


def first_runs(work, runs):
    cache = os.path.join(work, "cache")
    env = env_for(NYM_CACHE_DIR=cache)
    rows = []
    # Cold: an empty cache; the first project pays for libos and the rest.
    cold = os.path.join(work, "cold")
    os.makedirs(cold)
    nym(["new", "p0"], cold, env)
    p0 = os.path.join(cold, "p0")
    cold_run = timed(["run", "--", "--count", "1"], p0, env)
    cold_kvm = timed(["run", "--target", "kvm", "--", "--count", "1"], p0, env)
    # Warm: each first run is a new project's.
    warm_run, warm_kvm = [], []
    for i in range(runs):
        d = os.path.join(work, f"warm{i}")
        os.makedirs(d)
        nym(["new", "p"], d, env)
        p = os.path.join(d, "p")
        warm_run.append(timed(["run", "--", "--count", "1"], p, env))
        d = os.path.join(work, f"warmkvm{i}")
        os.makedirs(d)
        nym(["new", "p"], d, env)
        p = os.path.join(d, "p")
        warm_kvm.append(timed(["run", "--target", "kvm", "--", "--count", "1"], p, env))
    rows.append(("first `nym run`", ms(cold_run), ms(statistics.median(warm_run)),
                 ms(min(warm_run)), ms(max(warm_run))))
    rows.append(("first `nym run --target kvm`", ms(cold_kvm), ms(statistics.median(warm_kvm)),
                 ms(min(warm_kvm)), ms(max(warm_kvm))))
    project = du(os.path.join(p0, "target"))
    return rows, project, du(cache)


def copy_sources(dest):
    """nym's sources (what generated crates build from), without target/."""
    shutil.copytree(ROOT, dest, symlinks=True,
                    ignore=shutil.ignore_patterns("target", ".git", "fuzz"))


def other_cargo_home(dest):
    home = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    os.makedirs(dest)
    for part in ["registry", "git"]:
        src = os.path.join(home, part)
        if os.path.isdir(src):
            subprocess.run(["cp", "-al", src, os.path.join(dest, part)], check=True)
    return dest


def images(work):
    users = {
        "user 1": dict(folder=os.path.join(work, "u1"), env=env_for(
            NYM_CACHE_DIR=os.path.join(work, "u1-cache"))),
        "user 2": dict(folder=os.path.join(work, "elsewhere", "deeper", "u2"), env=env_for(
            NYM_CACHE_DIR=os.path.join(work, "u2", "cache-of-user-2"),
            NYM_SRC=os.path.join(work, "u2-nym-src"),
            CARGO_HOME=os.path.join(work, "u2-cargo-home"),
            CARGO_NET_OFFLINE="true")),
    }
    copy_sources(users["user 2"]["env"]["NYM_SRC"])
    other_cargo_home(users["user 2"]["env"]["CARGO_HOME"])
    shas = {}
    took = {}
    for user, u in users.items():
        os.makedirs(u["folder"], exist_ok=True)
        for template in ["hello", "http"]:
            nym(["new", template, "--template", template], u["folder"], u["env"])
            proj = os.path.join(u["folder"], template)
            for target in ["kvm", "qemu", "xen"]:
                start = time.perf_counter()
                out = nym(["build", "--target", target, "--release"], proj, u["env"], check=False)
                took[(user, template, target)] = time.perf_counter() - start
                sha = [l.split()[1] for l in out.stderr.splitlines() if l.startswith("sha256 ")]
                if out.returncode != 0:
                    # A graph the target cannot run (`nym check --target`).
                    shas[(user, template, target)] = None
                else:
                    shas[(user, template, target)] = sha[-1] if sha else "(none printed)"
    return shas, took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if not os.path.exists(NYM):
        sys.exit("build nym first: cargo build --release --bin nym")
    work = tempfile.mkdtemp(prefix="nym-bench-builds-")
    try:
        rows, project, cache = first_runs(work, a.runs)
        shas, took = images(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Command: `cargo build --release --bin nym && scripts/bench_builds.py --runs {a.runs}`"
          f" ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}.\n")
    print("### First runs of a new project (hello, `--count 1`)\n")
    print(f"| | cold cache | warm cache, median of {a.runs} new projects | min | max |")
    print("|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print(f"\nA project's `target/` after its first `nym run` and `nym run --target kvm`: {mib(project)};"
          f" the shared cache after all of them: {mib(cache)}.\n")
    print("### Release images built by two users (sha256)\n")
    print("| image | user 1 | user 2 | same |")
    print("|---|---|---|---|")
    for template in ["hello", "http"]:
        for target in ["kvm", "qemu", "xen"]:
            one, two = shas[("user 1", template, target)], shas[("user 2", template, target)]
            if one is None and two is None:
                print(f"| {template} `--target {target}` | not built: the graph needs what the target lacks | | |")
                continue
            one, two = one or "(failed)", two or "(failed)"
            print(f"| {template} `--target {target}` | `{one[:16]}…` | `{two[:16]}…` |"
                  f" {'yes' if one == two else '**no**'} |")
    cold = [took[(u, "hello", "kvm")] for u in ["user 1", "user 2"]]
    print(f"\nEach user's first release build (cold cache): {ms(cold[0])} and {ms(cold[1])}.")


if __name__ == "__main__":
    main()
