#!/usr/bin/env bash
# Install Debian's nats-server (NATS with JetStream) if it is missing, then check it runs.
# Idempotent: a machine that has it does nothing but the check. tests/peers/servers.py starts a
# private nats-server per session, so no system service is needed. Exits non-zero, with the
# reason, when NATS cannot be provided, so CI fails instead of skipping the NATS transport tests.
set -euo pipefail

if ! command -v nats-server >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "nats.sh: nats-server is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "nats.sh: installing nats-server from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server
    fi
fi

if ! version=$(nats-server --version 2>&1); then
    echo "nats.sh: nats-server is installed but 'nats-server --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "nats.sh: $version"
