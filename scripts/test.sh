#!/usr/bin/env bash
# Runs the whole test suite: installs Mosquitto when missing, then every test of the workspace.
# Tests that need a broker start their own on a free loopback port, and fail (never skip) when
# Mosquitto cannot be found.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

# The crash-safety test runs the example node as a child process. `cargo test --all-targets`
# builds examples only as test harnesses, so the real binary is built here first.
cargo build --locked -p alicia --example node

# Arguments select what to test (for example `-p alicia-core`); without any, the whole workspace.
if [ $# -eq 0 ]; then
    set -- --workspace
fi
cargo test "$@" --all-targets --locked
cargo test "$@" --doc --locked
