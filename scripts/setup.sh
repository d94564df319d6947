#!/usr/bin/env bash
# Installs what building and testing need on Debian 12, when missing. Safe to run again.
set -euo pipefail

need_apt=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in protobuf-compiler libprotobuf-dev libclang-dev librocksdb-dev libsnappy-dev liblz4-dev libzstd-dev \
           etcd-server etcd-client openssl curl ca-certificates pkg-config build-essential; do
  have "$pkg" || need_apt+=("$pkg")
done
# The node agent's runtime: containerd (its CRI plugin), runc, the CNI plugins (/usr/lib/cni),
# busybox-static (the local busybox image) and the tools the network clean-up uses. A containerd
# or runc binary that is already there (e.g. Docker's containerd.io package) is used as it is:
# installing Debian's package beside it would conflict with the engine's.
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || need_apt+=(containerd)
command -v runc >/dev/null 2>&1 || have runc || need_apt+=(runc)
# The fault-injection suite (cluster-tests/src/jepsen) cuts links with iptables run in a member
# container's network namespace (nsenter, from util-linux) and draws its plots with DejaVu Sans.
for pkg in containernetworking-plugins busybox-static iptables iproute2 util-linux fonts-dejavu-core; do
  have "$pkg" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
  # Debian's etcd-server starts a system etcd on 2379; we only want its binary as a reference.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    $SUDO systemctl disable --now etcd || true
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "error: cargo (Rust 1.89 or newer) is not installed; install it with rustup first" >&2
    exit 1
  fi
fi
