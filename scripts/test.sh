#!/usr/bin/env bash
# The README's second command, and what CI runs: the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

# A fresh clone builds everything once: incremental caches would only take
# disk (13 GB of them on a developer's machine).
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

echo "[test] formatting" >&2
cargo fmt --all -- --check

# What guest builds pass so RustCrypto (TLS) takes its portable paths on a
# soft-float target: nym_driver::cargo::SOFT_CRYPTO (a test keeps the two
# lists equal).
soft_crypto='--cfg aes_force_soft --cfg polyval_force_soft --cfg poly1305_force_soft --cfg chacha20_force_soft --cfg curve25519_dalek_backend="serial"'

echo "[test] libos builds for x86_64-unknown-none (no std may leak in)" >&2
cargo build -p libos --target x86_64-unknown-none
RUSTFLAGS="$soft_crypto" cargo build -p libos --features tls --target x86_64-unknown-none

echo "[test] clippy (host, and the guest runtime for its own target)" >&2
cargo clippy --workspace --all-targets -- -D warnings
RUSTFLAGS="$soft_crypto" cargo clippy -p nym-baremetal --features tls --target x86_64-unknown-none -- -D warnings

echo "[test] the test suite" >&2
# Every test binary runs even after one fails: CI reports all failures at once.
cargo test --workspace --no-fail-fast
