#!/usr/bin/env bash
# Install Debian's rabbitmq-server (with the Erlang runtime it depends on) if it is missing, then
# check that its scripts and the Erlang VM run. Idempotent: a machine that has it does nothing but
# the checks. apt does not start the service here and nothing relies on it: tests/peers/servers.py
# starts a private node (own node name, ports, cookie and directories) per session. Exits non-zero,
# with the reason, when RabbitMQ cannot be provided, so CI fails instead of skipping its tests.
set -euo pipefail
# shellcheck source=../debian_package.sh
source "$(dirname "$0")/../debian_package.sh"

# The Debian wrapper in /usr/sbin switches to the rabbitmq user and its fixed directories; the
# scripts here are the unwrapped ones, which honour RABBITMQ_* variables for a private node.
RABBIT_BIN=/usr/lib/rabbitmq/bin

if [ ! -x "${RABBIT_BIN}/rabbitmq-server" ]; then
    install_debian_package rabbitmq.sh rabbitmq-server rabbitmq-server
fi

for tool in rabbitmq-server rabbitmqctl; do
    if [ ! -x "${RABBIT_BIN}/${tool}" ]; then
        echo "rabbitmq.sh: ${RABBIT_BIN}/${tool} is missing after installing rabbitmq-server" >&2
        exit 1
    fi
done
# The node itself is too slow to boot for a check here (seconds); the Erlang VM it runs on is
# what a broken install usually lacks, so check that erl starts and prints its OTP release.
if ! otp=$(erl -noshell -eval 'io:format("~s", [erlang:system_info(otp_release)]), halt().' 2>&1); then
    echo "rabbitmq.sh: the Erlang runtime rabbitmq-server needs does not start:" >&2
    echo "$otp" >&2
    exit 1
fi
if ! command -v epmd >/dev/null 2>&1; then
    echo "rabbitmq.sh: epmd (Erlang port mapper) is missing; RabbitMQ nodes cannot register" >&2
    exit 1
fi
version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
echo "rabbitmq.sh: rabbitmq-server ${version} on Erlang/OTP ${otp}"
