#!/usr/bin/env bash
# Install Debian's nats-server (NATS with JetStream) if it is missing, then check it runs.
# Idempotent: a machine that has it does nothing but the check. tests/peers/servers.py starts a
# private nats-server per session, so no system service is needed. Exits non-zero, with the
# reason, when NATS cannot be provided, so CI fails instead of skipping the NATS transport tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

if ! command -v nats-server >/dev/null 2>&1; then
    install_debian_package nats.sh nats-server nats-server
fi

if ! version=$(nats-server --version 2>&1); then
    echo "nats.sh: nats-server is installed but 'nats-server --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "nats.sh: $version"
