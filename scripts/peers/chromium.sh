#!/usr/bin/env bash
# Install Debian's chromium (the console's browser tests drive it through Playwright with
# executable_path; Playwright never downloads a browser of its own) if it is missing, then check
# it runs. Idempotent: a machine that has it does nothing but the check. Exits non-zero, with the
# reason, when chromium cannot be provided, so CI fails instead of skipping the browser tests.
set -euo pipefail

if ! command -v chromium >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "chromium.sh: chromium is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "chromium.sh: installing chromium from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
    fi
fi

if ! version=$(chromium --headless --no-sandbox --version 2>&1); then
    echo "chromium.sh: chromium is installed but 'chromium --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "chromium.sh: $version"
