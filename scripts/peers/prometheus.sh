#!/usr/bin/env bash
# Install Debian's prometheus package for its promtool (`promtool check metrics`, `check rules`,
# `test rules`: the metrics and alerting tests), then check it runs. Idempotent: a machine that
# has promtool does nothing but the check. No Prometheus server is needed: where apt starts the
# packaged service, it is stopped and disabled again. Exits non-zero, with the reason, when
# promtool cannot be provided, so CI fails instead of skipping the metrics tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

if ! command -v promtool >/dev/null 2>&1; then
    install_debian_package prometheus.sh promtool prometheus --no-install-recommends
    if command -v systemctl >/dev/null 2>&1; then
        sudo_if_needed=()
        if [ "$(id -u)" -ne 0 ]; then
            sudo_if_needed=(sudo)
        fi
        "${sudo_if_needed[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

if ! version=$(promtool --version 2>&1); then
    echo "prometheus.sh: promtool is installed but 'promtool --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "prometheus.sh: $(echo "$version" | head -n 1)"
