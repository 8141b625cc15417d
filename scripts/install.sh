#!/usr/bin/env bash
# Installs what nym and its test suite need, idempotently: the Rust target
# for unikernel images and the Debian packages of the real peers the tests
# drive (Graphviz's dot). Safe to run again; does nothing when all is there.
set -euo pipefail

say() { printf '[install] %s\n' "$*" >&2; }

sudo_if_needed() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        say "need root to run: $*"; exit 1
    fi
}

if ! command -v cargo >/dev/null; then
    say "cargo is not installed: install Rust with rustup first (https://rustup.rs)"
    exit 1
fi

# Guest images and the no_std check of libos build for this target.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-none; then
    say "adding the x86_64-unknown-none Rust target"
    rustup target add x86_64-unknown-none
fi

# Debian packages: binary to look for, package that provides it.
missing=()
for pair in dot:graphviz; do
    bin=${pair%%:*} pkg=${pair#*:}
    command -v "$bin" >/dev/null || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        say "please install: ${missing[*]} (no apt-get here)"
        exit 1
    fi
    say "installing ${missing[*]}"
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "all set"
