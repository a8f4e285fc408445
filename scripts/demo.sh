#!/usr/bin/env bash
# The main job: builds Mantle, starts a local cluster (one master, two agents) and runs
# the factorial framework on it end to end, lists its tasks with the CLI, then stops the
# cluster. Run from a terminal, it keeps the cluster and its web UI up until Enter.
#   scripts/demo.sh [N ...]     numbers to compute (default 5 7 10 70 30)
#   MANTLE_DEMO_WAIT=0 scripts/demo.sh     never wait for Enter
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> building mantle and the factorial example (release)"
cargo build --release --quiet -p mantle -p factorial

port=${MANTLE_PORT:-5050}
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null || (echo >"/dev/tcp/127.0.0.1/$((port + 1))") 2>/dev/null \
    || (echo >"/dev/tcp/127.0.0.1/$((port + 2))") 2>/dev/null; do
    port=$((port + 10))
done
work_dir=$(mktemp -d -t mantle-demo.XXXXXX)
log="$work_dir/cluster.log"
echo "==> starting mantle local with 2 agents on 127.0.0.1:$port (logs: $log)"
target/release/mantle local --num_agents 2 --ip 127.0.0.1 --port "$port" --work_dir "$work_dir" >"$log" 2>&1 &
cluster=$!
cleanup() {
    kill "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/master/state" 2>/dev/null | grep -q '"activated_slaves":2'; then
        break
    fi
    sleep 0.1
done
echo "==> cluster up: master and web UI at http://127.0.0.1:$port/"
echo "==> running the factorial framework"
target/release/factorial-scheduler --master "127.0.0.1:$port" --executor target/release/factorial-executor "$@"
echo "==> the cluster's tasks (mantle tasks --master 127.0.0.1:$port)"
target/release/mantle tasks --master "127.0.0.1:$port"
if [[ -t 0 && "${MANTLE_DEMO_WAIT:-1}" != 0 ]]; then
    read -r -p "==> web UI at http://127.0.0.1:$port/ — press Enter to stop the cluster " _
fi
echo "==> done; stopping the cluster"
