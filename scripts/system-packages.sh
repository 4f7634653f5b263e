#!/usr/bin/env bash
# Install the Debian/Ubuntu packages named as arguments that are missing, when run as root
# with apt-get; otherwise say what must be installed. Another apt or dpkg holding the lock
# (unattended upgrades on a fresh machine) is waited for, up to APT_LOCK_TIMEOUT seconds
# (default 600), instead of failing at once.
set -euo pipefail

if command -v apt-get >/dev/null && [[ "$(id -u)" == 0 ]]; then
    missing=()
    for p in "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if ((${#missing[@]})); then
        wait_for_lock=(-o "DPkg::Lock::Timeout=${APT_LOCK_TIMEOUT:-600}")
        apt-get "${wait_for_lock[@]}" update -qq
        DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_lock[@]}" install -y -qq \
            --no-install-recommends "${missing[@]}"
    fi
else
    echo "install.sh: not root or no apt-get; make sure these are installed: $*" >&2
fi
