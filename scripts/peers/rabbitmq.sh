#!/usr/bin/env bash
# Install Debian's rabbitmq-server (with the Erlang runtime it depends on) if it is missing, then
# check that its scripts and the Erlang VM run. Idempotent: a machine that has it does nothing but
# the checks. apt does not start the service here and nothing relies on it: tests/peers/servers.py
# starts a private node (own node name, ports, cookie and directories) per session. Exits non-zero,
# with the reason, when RabbitMQ cannot be provided, so CI fails instead of skipping its tests.
set -euo pipefail

# The Debian wrapper in /usr/sbin switches to the rabbitmq user and its fixed directories; the
# scripts here are the unwrapped ones, which honour RABBITMQ_* variables for a private node.
RABBIT_BIN=/usr/lib/rabbitmq/bin

if [ ! -x "${RABBIT_BIN}/rabbitmq-server" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "rabbitmq.sh: rabbitmq-server is missing and there is no apt-get to install it" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    echo "rabbitmq.sh: installing rabbitmq-server from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
    fi
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
