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

# Guests a test started must end with it: what runs before the suite is
# left alone, anything new afterwards is a leak (and is stopped).
guests() {
    pgrep -f 'qemu-system-x86_64' | sort || true
    if command -v virsh >/dev/null; then
        virsh -c qemu:///system list --name 2>/dev/null | grep -E '^nym-' | sed 's/^/domain /' || true
    fi
}
before=$(guests)

echo "[test] the test suite" >&2
# Every test binary runs even after one fails: CI reports all failures at once.
status=0
cargo test --workspace --no-fail-fast || status=$?

echo "[test] no guest outlives the suite" >&2
sleep 2
leaked=$(comm -13 <(echo "$before") <(guests) | grep -v '^$' || true)
if [ -n "$leaked" ]; then
    echo "[test] FAILED: guests still running after the suite:" >&2
    while read -r g; do
        case "$g" in
            domain\ *) name=${g#domain }
                echo "  libvirt domain $name" >&2
                virsh -c qemu:///system destroy "$name" >/dev/null 2>&1 || true
                virsh -c qemu:///system undefine "$name" >/dev/null 2>&1 || true ;;
            *) echo "  $(ps -o pid=,etime=,args= -p "$g" | cut -c1-200)" >&2
                kill "$g" 2>/dev/null || true ;;
        esac
    done <<< "$leaked"
    status=1
fi
exit "$status"
