#!/usr/bin/env bash
# Install Debian's kcat (the librdkafka command-line client) if it is missing, then check it runs.
# Idempotent: a machine that has it does nothing but the check. Exits non-zero, with the reason,
# when kcat cannot be provided, so CI fails instead of skipping the kcat conformance tests.
set -euo pipefail

if ! command -v kcat >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "kcat.sh: kcat is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "kcat.sh: installing kcat from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
    fi
fi

if ! version=$(kcat -V 2>&1); then
    echo "kcat.sh: kcat is installed but 'kcat -V' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "kcat.sh: $(echo "$version" | grep -m1 "^Version" || echo "$version" | head -n 1)"
