#!/usr/bin/env bash
# Install Debian's redis-server (the server and its redis-benchmark/redis-cli tools) if missing,
# then check the binary runs. Idempotent: a machine that has it does nothing but the check.
# apt does not start the service here and nothing relies on it: tests/peers/servers.py starts a
# private redis-server on a free loopback port per session. Exits non-zero, with the reason, when
# Redis cannot be provided, so CI fails instead of skipping the Redis transport tests.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "redis.sh: redis-server is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "redis.sh: installing redis-server from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
    fi
fi

if ! version=$(redis-server --version 2>&1); then
    echo "redis.sh: redis-server is installed but 'redis-server --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "redis.sh: $version"
