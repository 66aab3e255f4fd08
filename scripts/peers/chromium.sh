#!/usr/bin/env bash
# Install Debian's chromium (the console's browser tests drive it through Playwright with
# executable_path; Playwright never downloads a browser of its own) if it is missing, then check
# it runs. Idempotent: a machine that has it does nothing but the check. Exits non-zero, with the
# reason, when chromium cannot be provided, so CI fails instead of skipping the browser tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

if ! command -v chromium >/dev/null 2>&1; then
    install_debian_package chromium.sh chromium chromium
fi

if ! version=$(chromium --headless --no-sandbox --version 2>&1); then
    echo "chromium.sh: chromium is installed but 'chromium --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "chromium.sh: $version"
