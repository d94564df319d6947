#!/usr/bin/env bash
# Stops what scripts/up.sh started (data stays in .run/).
cd "$(dirname "$0")/.."
if [ -f .run/store.pid ]; then
  kill "$(cat .run/store.pid)" 2>/dev/null && echo "store stopped"
  rm -f .run/store.pid
fi
