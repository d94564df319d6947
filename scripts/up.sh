#!/usr/bin/env bash
# Builds and starts the system on this machine, as far as it is built: a single-member store on
# https://127.0.0.1:2379 (etcd v3 API, mutual TLS only; .run/store.env sets etcdctl's and pctl
# store's variables), the apiserver on https://127.0.0.1:6443 in front of it, and the
# node's own containerd (config, root, state and socket in .run/containerd/, CNI network
# "cluster-pods" on bridge clusterbr0, pod subnet $POD_CIDR or 10.88.0.0/16) with the local images
# localhost/pause:3.9 and localhost/busybox:1.36 imported (scripts/images.sh), and the agent
# with its API (logs, exec, stats) on https://NODE_IP:10250 for the apiserver's client certificate.
# Certificates go to .run/pki, an admin kubeconfig to .run/admin.kubeconfig, logs to .run/*.log.
# UP_NO_BUILD=1 skips the build (the tests, which have built everything already).
# Stop it with: scripts/down.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ -z "${UP_NO_BUILD:-}" ]; then
  echo "==> building (first build compiles dependencies: ~17 minutes on 2 cores)"
  cargo build --workspace --bins
fi
target="${CARGO_TARGET_DIR:-target}"
mkdir -p .run
running() { [ -f ".run/$1.pid" ] && kill -0 "$(cat ".run/$1.pid")" 2>/dev/null; }

pki=.run/pki
node="$(hostname | tr '[:upper:]' '[:lower:]')"
# The node's address (the agent's default: the source address of the default route); the
# apiserver dials it for logs and exec and checks the agent's serving certificate names it.
node_ip="$(ip -4 route get 192.0.2.1 2>/dev/null | awk '{for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1)}')"
node_ip="${node_ip:-127.0.0.1}"
if [ ! -f "$pki/ca.crt" ]; then
  echo "==> making a CA and certificates in $pki (pctl certs generate)"
  "$target/debug/pctl" certs generate --dir "$pki" --nodes "$node" --hosts "$node_ip"
fi
if ! openssl x509 -noout -text -in "$pki/node-$node.crt" 2>/dev/null | grep -q "IP Address:$node_ip\b"; then
  echo "warning: $pki/node-$node.crt does not name $node_ip: kubectl logs/exec will fail;" >&2
  echo "         run scripts/down.sh, remove $pki and run scripts/up.sh again" >&2
fi

# The store listens only on mutual TLS: clients need a certificate of the cluster CA (the
# apiserver's store-client certificate, or the operator's: source .run/store.env).
if [ ! -f "$pki/store-operator.crt" ]; then
  echo "warning: $pki has no store-operator certificate (made by an older pctl): etcdctl and" >&2
  echo "         pctl store cannot reach the store; run scripts/down.sh, remove $pki, up.sh again" >&2
fi
cat > .run/store.env <<ENVEOF
# The store of the cluster scripts/up.sh started: source it for etcdctl and pctl store.
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS=https://127.0.0.1:2379
export ETCDCTL_CACERT=$PWD/$pki/ca.crt
export ETCDCTL_CERT=$PWD/$pki/store-operator.crt
export ETCDCTL_KEY=$PWD/$pki/store-operator.key
export PCTL_STORE_ENDPOINTS=https://127.0.0.1:2379
export PCTL_STORE_CACERT=$PWD/$pki/ca.crt
export PCTL_STORE_CERT=$PWD/$pki/store-operator.crt
export PCTL_STORE_KEY=$PWD/$pki/store-operator.key
ENVEOF
if running store; then
  echo "store already running (pid $(cat .run/store.pid))"
else
  echo "==> starting store (client https://127.0.0.1:2379 with client certificates, metrics http://127.0.0.1:2381)"
  nohup "$target/debug/store" --name default --data-dir .run/store \
    --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
    --cert-file "$pki/store.crt" --key-file "$pki/store.key" \
    --trusted-ca-file "$pki/ca.crt" --client-cert-auth \
    --listen-metrics-urls http://127.0.0.1:2381 >> .run/store.log 2>&1 &
  echo $! > .run/store.pid
  for _ in $(seq 1 50); do
    if curl -sf http://127.0.0.1:2381/health >/dev/null; then break; fi
    sleep 0.2
  done
  curl -sf http://127.0.0.1:2381/health >/dev/null || { echo "store did not become healthy; see .run/store.log" >&2; tail -20 .run/store.log >&2; exit 1; }
fi

if running apiserver; then
  echo "apiserver already running (pid $(cat .run/apiserver.pid))"
else
  echo "==> starting apiserver (https://127.0.0.1:6443)"
  nohup "$target/debug/apiserver" --etcd-servers https://127.0.0.1:2379 \
    --etcd-cafile "$pki/ca.crt" --etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
    --secure-port 6443 --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --audit-log-path .run/audit.log \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" >> .run/apiserver.log 2>&1 &
  echo $! > .run/apiserver.pid
  for _ in $(seq 1 100); do
    if curl -sf --cacert "$pki/ca.crt" https://127.0.0.1:6443/readyz >/dev/null; then break; fi
    sleep 0.2
  done
  curl -sf --cacert "$pki/ca.crt" https://127.0.0.1:6443/readyz >/dev/null || { echo "apiserver did not become ready; see .run/apiserver.log" >&2; tail -20 .run/apiserver.log >&2; exit 1; }
fi

# The node's container runtime: a containerd of our own, never the one of a Docker engine.
source scripts/lib/containerd.sh
CONTAINERD_DIR="$PWD/.run/containerd"
CONTAINERD_SOCK="$CONTAINERD_DIR/containerd.sock"
POD_CIDR="${POD_CIDR:-10.88.0.0/16}"
echo "==> starting containerd (socket $CONTAINERD_SOCK, pods on $POD_CIDR)"
containerd_configure "$CONTAINERD_DIR" cluster-pods clusterbr0 "$POD_CIDR"
containerd_start "$CONTAINERD_DIR"
echo "==> building and importing the local images (scripts/images.sh)"
scripts/images.sh import --address "$CONTAINERD_SOCK"

for user in admin viewer scheduler controller-manager "node-$node"; do
  "$target/debug/pctl" kubeconfig --certs-dir "$pki" --user "$user" --server https://127.0.0.1:6443 > ".run/$user.kubeconfig"
  chmod 600 ".run/$user.kubeconfig"
done

# start NAME ARGS...: runs target/debug/NAME in the background unless it already runs.
start() {
  local name="$1"; shift
  if running "$name"; then
    echo "$name already running (pid $(cat ".run/$name.pid"))"
    return
  fi
  echo "==> starting $name (log .run/$name.log)"
  nohup "$target/debug/$name" "$@" >> ".run/$name.log" 2>&1 &
  echo $! > ".run/$name.pid"
}

start scheduler --kubeconfig .run/scheduler.kubeconfig
start controller-manager --kubeconfig .run/controller-manager.kubeconfig \
  --allocate-node-cidrs=false
start agent --kubeconfig ".run/node-$node.kubeconfig" --hostname-override "$node" \
  --node-ip "$node_ip" \
  --container-runtime-endpoint "unix://$CONTAINERD_SOCK" --pod-cidr "$POD_CIDR" \
  --root-dir "$PWD/.run/agent" \
  --tls-cert-file "$pki/node-$node.crt" --tls-private-key-file "$pki/node-$node.key" \
  --client-ca-file "$pki/ca.crt"

echo "store, apiserver, containerd, scheduler, controller-manager and the agent of node $node are up. Try:"
echo "  export KUBECONFIG=$PWD/.run/admin.kubeconfig"
echo "  kubectl get ns && kubectl apply -f examples/deployment-web.yaml && kubectl get deploy,svc"
