#!/usr/bin/env bash
# Install Debian's kcat (the librdkafka command-line client) if it is missing, then check it runs.
# Idempotent: a machine that has it does nothing but the check. Exits non-zero, with the reason,
# when kcat cannot be provided, so CI fails instead of skipping the kcat conformance tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

if ! command -v kcat >/dev/null 2>&1; then
    install_debian_package kcat.sh kcat kcat
fi

if ! version=$(kcat -V 2>&1); then
    echo "kcat.sh: kcat is installed but 'kcat -V' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "kcat.sh: $(echo "$version" | grep -m1 "^Version" || echo "$version" | head -n 1)"
