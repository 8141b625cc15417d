#!/usr/bin/env bash
# The README's first command: installs what nym needs, builds nym, and runs
# the hello example in-process, the way a developer's day starts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
cargo build --release --bin nym --bin nym-studio
echo "[setup] nym is at target/release/nym; running examples/hello in-process:" >&2
cd examples/hello
exec ../../target/release/nym run
