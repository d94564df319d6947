#!/usr/bin/env bash
# Stops what scripts/up.sh started (data, certificates and imported images stay in .run/).
# containerd goes last: every container and pod sandbox it runs is removed, with their mounts,
# network namespaces, the CNI bridge and its iptables rules.
cd "$(dirname "$0")/.."
for svc in agent scheduler controller-manager apiserver store; do
  if [ -f ".run/$svc.pid" ]; then
    kill "$(cat ".run/$svc.pid")" 2>/dev/null && echo "$svc stopped"
    rm -f ".run/$svc.pid"
  fi
done
source scripts/lib/containerd.sh
if [ -d .run/containerd ]; then
  was_running=""
  containerd_pid "$PWD/.run/containerd" >/dev/null && was_running=1
  # Also when it is not running: removes what a crashed containerd left (mounts, network).
  containerd_stop "$PWD/.run/containerd"
  if [ -n "$was_running" ]; then echo "containerd stopped, its containers, mounts and pod network removed"; fi
fi
# The agent's tmpfs volumes (memory emptyDirs, secrets, projected volumes) under its root dir.
if [ -d .run/agent ]; then _containerd_unmount_under "$PWD/.run/agent"; fi
