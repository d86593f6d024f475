#!/usr/bin/env bash
# Installs what the test suite needs on a Debian-based machine: Mosquitto (broker and clients).
# Does nothing when everything is already installed. Needs root (or sudo) only when installing.
set -euo pipefail

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "installing test dependencies: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "error: ${missing[*]} missing and not running as root; install them with apt-get" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

# The package starts a system broker on port 1883; the tests never use it (each test starts its
# own broker on a free loopback port), so it is left as the package configured it.
