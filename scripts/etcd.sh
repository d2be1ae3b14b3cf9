#!/usr/bin/env bash
# Starts and stops a single etcd on 127.0.0.1 for `revkv bench --peer etcd`.
#
#   scripts/etcd.sh start   # an empty etcd with a temporary data directory, on port 2379
#   scripts/etcd.sh stop    # ends that etcd by its PID and removes its data directory
#
# etcd comes from Debian: apt-get install -y etcd-server etcd-client (3.4.23 on bookworm).
# --max-txn-ops is raised from etcd's 128, and --max-request-bytes from its 1.5 MiB to the
# 10 MiB etcd's documentation suggests as the most, so that etcd runs the workload's
# transactions of 1000 puts like the other engines, values of 4 KiB included (4 MiB a
# transaction; over the limit its gateway answers 429); everything else is etcd's default.
set -euo pipefail

state=${REVKV_ETCD_STATE:-${TMPDIR:-/tmp}/revkv-etcd}
client_port=${REVKV_ETCD_PORT:-2379}
peer_port=$((client_port + 1))
endpoint=http://127.0.0.1:$client_port

running() {
    [[ -f $state/pid ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

start() {
    if running; then
        echo "etcd already runs as PID $(cat "$state/pid") ($endpoint)" >&2
        exit 1
    fi
    command -v etcd >/dev/null || {
        echo "etcd is not installed: apt-get install -y etcd-server etcd-client" >&2
        exit 1
    }
    mkdir -p "$state"
    local data
    data=$(mktemp -d "${TMPDIR:-/tmp}/revkv-etcd-data.XXXXXX")
    echo "$data" >"$state/data"
    etcd --name revkv-bench --data-dir "$data" \
        --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "revkv-bench=http://127.0.0.1:$peer_port" \
        --max-txn-ops 10000 --max-request-bytes $((10 * 1024 * 1024)) \
        --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
        --logger zap --log-level warn >"$state/etcd.log" 2>&1 &
    echo $! >"$state/pid"
    for _ in $(seq 100); do
        if ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint health >/dev/null 2>&1; then
            echo "etcd $(etcd --version | head -1 | awk '{print $3}') runs as PID $(cat "$state/pid") at $endpoint, data in $data"
            return
        fi
        if ! running; then
            echo "etcd exited; its log:" >&2
            cat "$state/etcd.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "etcd did not become healthy in 20 s; see $state/etcd.log" >&2
    exit 1
}

stop() {
    if ! running; then
        echo "no etcd started by this script is running" >&2
        rm -rf "$state"
        exit 1
    fi
    local pid
    pid=$(cat "$state/pid")
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "etcd (PID $pid) did not stop in 10 s" >&2
        exit 1
    fi
    rm -rf "$(cat "$state/data")" "$state"
    echo "etcd (PID $pid) stopped"
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
