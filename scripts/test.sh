#!/usr/bin/env bash
# Runs the whole test suite: installs Mosquitto when missing, then every test of the workspace.
# Tests that need a broker start their own on a free loopback port; with ALICIA_REQUIRE_BROKER=1
# (set here and in CI) a test that cannot find Mosquitto fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh

export ALICIA_REQUIRE_BROKER=1
cargo test --workspace --all-targets --locked "$@"
cargo test --workspace --doc --locked
