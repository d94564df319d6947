#!/usr/bin/env bash
# Builds and starts the system on this machine. For now: a single-member store on
# 127.0.0.1:2379 (etcd v3 API), data in .run/store, log in .run/store.log.
# Stop it with: scripts/down.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building (first build compiles dependencies: ~8 minutes on 2 cores)"
cargo build --workspace --bins
target="${CARGO_TARGET_DIR:-target}"
mkdir -p .run
if [ -f .run/store.pid ] && kill -0 "$(cat .run/store.pid)" 2>/dev/null; then
  echo "store already running (pid $(cat .run/store.pid))"
else
  echo "==> starting store (client http://127.0.0.1:2379, metrics http://127.0.0.1:2381)"
  nohup "$target/debug/store" --name default --data-dir .run/store \
    --listen-metrics-urls http://127.0.0.1:2381 >> .run/store.log 2>&1 &
  echo $! > .run/store.pid
  for _ in $(seq 1 50); do
    if curl -sf http://127.0.0.1:2381/health >/dev/null; then break; fi
    sleep 0.2
  done
  curl -sf http://127.0.0.1:2381/health >/dev/null || { echo "store did not become healthy; see .run/store.log" >&2; tail -20 .run/store.log >&2; exit 1; }
fi
echo "store is up. Try: ETCDCTL_API=3 etcdctl put hello world && ETCDCTL_API=3 etcdctl get hello"
