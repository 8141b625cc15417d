#!/usr/bin/env bash
# The README's second command, and what CI runs: the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

echo "[test] formatting" >&2
cargo fmt --all -- --check

echo "[test] libos builds for x86_64-unknown-none (no std may leak in)" >&2
cargo build -p libos --target x86_64-unknown-none

echo "[test] clippy (host, and the guest runtime for its own target)" >&2
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p nym-baremetal --target x86_64-unknown-none -- -D warnings

echo "[test] the test suite" >&2
cargo test --workspace
