#!/usr/bin/env bash
# Install Debian's prometheus package for its promtool (`promtool check metrics`, `check rules`,
# `test rules`: the metrics and alerting tests), then check it runs. Idempotent: a machine that
# has promtool does nothing but the check. No Prometheus server is needed: where apt starts the
# packaged service, it is stopped and disabled again. Exits non-zero, with the reason, when
# promtool cannot be provided, so CI fails instead of skipping the metrics tests.
set -euo pipefail

if ! command -v promtool >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "prometheus.sh: promtool is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "prometheus.sh: installing prometheus (for promtool) from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        prometheus >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            prometheus
    fi
    if command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

if ! version=$(promtool --version 2>&1); then
    echo "prometheus.sh: promtool is installed but 'promtool --version' fails:" >&2
    echo "$version" >&2
    exit 1
fi
echo "prometheus.sh: $(echo "$version" | head -n 1)"
