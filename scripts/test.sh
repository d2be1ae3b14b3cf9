#!/usr/bin/env bash
# The project's test command on a fresh Debian machine, run as root: installs what the tests
# need beyond the Rust toolchain, then runs every test of the workspace. Arguments go to
# `cargo test --workspace`, e.g. `scripts/test.sh --test power_cut`; without arguments the
# memory-measuring tests run after the rest, alone.
#
# The power-cut tests (crates/powercut) mount a FUSE filesystem: they need /dev/fuse and
# fusermount3, from Debian's fuse3 package. The server's real-client tests (crates/server)
# need kubectl (1.32, on every machine of this kind) and a virtualenv with the Python
# `kubernetes` and `python-swiftclient` packages, which scripts/python-clients.sh creates.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v fusermount3 >/dev/null; then
    echo "scripts/test.sh: installing fuse3 (fusermount3) for the power-cut tests" >&2
    if ! output=$({ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3; } 2>&1); then
        echo "$output" >&2
        echo "scripts/test.sh: installing fuse3 failed; the power-cut tests cannot run" >&2
        exit 1
    fi
    if ! command -v fusermount3 >/dev/null; then
        echo "scripts/test.sh: fuse3 is installed but fusermount3 is not on PATH" >&2
        exit 1
    fi
fi

if ! command -v kubectl >/dev/null; then
    echo "scripts/test.sh: kubectl is not on PATH; the server's kubectl tests need it" >&2
    exit 1
fi
scripts/python-clients.sh >/dev/null

cargo test --workspace "$@"
if [ "$#" -eq 0 ]; then
    # Tests that measure the whole process's memory, one at a time, with nothing beside them.
    cargo test -p revkv --lib -- --ignored --test-threads=1
fi
