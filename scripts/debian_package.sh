#!/usr/bin/env bash
# Sourced by the peer scripts (scripts/peers/*.sh) that take their peer from Debian's packages.
#
# install_debian_package SCRIPT MISSING PACKAGE [APT-OPTION ...]
#   Installs PACKAGE with apt-get (through sudo when not root), saying so as SCRIPT; MISSING names
#   what is missing in the messages. Returns non-zero, with the reason, when it cannot.

install_debian_package() {
    local script="$1" missing="$2" package="$3"
    shift 3
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "${script}: ${missing} is missing and there is no apt-get to install it" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    # Another apt-get (a second peer script, unattended upgrades) may hold dpkg's lock: wait for
    # it rather than fail the whole CI run.
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    echo "${script}: installing ${package} from Debian"
    # The package lists may be absent (fresh machine) or stale; refresh them once before installing.
    if ! "${apt[@]}" install -y -qq "$@" "$package" >/dev/null 2>&1; then
        "${apt[@]}" update -qq
        "${apt[@]}" install -y -qq "$@" "$package"
    fi
}
