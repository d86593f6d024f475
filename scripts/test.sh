#!/usr/bin/env bash
# Runs the whole test suite: installs Mosquitto when missing, then every test of the workspace.
# Tests that need a broker start their own on a free loopback port, and fail (never skip) when
# Mosquitto cannot be found.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

cargo test --workspace --all-targets --locked "$@"
cargo test --workspace --doc --locked
