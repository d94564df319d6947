#!/usr/bin/env bash
# Stops what scripts/up.sh started (data and certificates stay in .run/).
cd "$(dirname "$0")/.."
for svc in apiserver store; do
  if [ -f ".run/$svc.pid" ]; then
    kill "$(cat ".run/$svc.pid")" 2>/dev/null && echo "$svc stopped"
    rm -f ".run/$svc.pid"
  fi
done
