#!/usr/bin/env bash
# Creates the virtualenv the real-client tests run the official Python clients from, and
# prints its directory: `kubernetes` and `python-swiftclient`, from the package index.
# Reuses an environment that already has both. Run as root on Debian: installs python3-venv
# when `python3 -m venv` is missing.
#
# Usage: scripts/python-clients.sh [DIR]   (default: target/python-clients)
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-target/python-clients}"

if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
    echo "scripts/python-clients.sh: installing python3-venv" >&2
    if ! output=$({ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv; } 2>&1); then
        echo "$output" >&2
        echo "scripts/python-clients.sh: installing python3-venv failed" >&2
        exit 1
    fi
fi

if ! "$venv/bin/python" -c "import kubernetes, swiftclient" 2>/dev/null; then
    echo "scripts/python-clients.sh: installing kubernetes and python-swiftclient into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes python-swiftclient >&2
fi
cd "$venv" && pwd
