#!/usr/bin/env bash
# Install Debian's redis-server (the server and its redis-benchmark/redis-cli tools) if missing,
# then check the binary runs. Idempotent: a machine that has it does nothing but the check.
# apt does not start the service here and nothing relies on it: tests/peers/servers.py starts a
# private redis-server on a free loopback port per session. Exits non-zero, with the reason, when
# Redis cannot be provided, so CI fails instead of skipping the Redis transport tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

if ! command -v redis-server >/dev/null 2>&1; then
    install_debian_package redis.sh redis-server redis-server
fi

if ! version=$(redis-server --version 2>&1); then
    echo "redis.sh: redis-server is installed but 'redis-server --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "redis.sh: $version"
