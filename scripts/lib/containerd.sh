#!/usr/bin/env bash
# A private containerd for the cluster (and for each test): its own config, root, state, socket,
# runc root and CNI network, so that it never touches a Docker engine's containerd on the machine.
#
# The one place where the cluster's containerd configuration is written. Used by scripts/up.sh and
# scripts/down.sh (sourced) and by the test harness (cluster-tests/src/containerd.rs, as a command):
#
#   scripts/lib/containerd.sh configure DIR NET BRIDGE SUBNET   write DIR/config.toml and the CNI conflist
#   scripts/lib/containerd.sh start DIR                         start it in the background, wait for CRI
#   scripts/lib/containerd.sh stop DIR [--purge]                remove every container and sandbox it ran,
#                                                               their mounts, CNI rules and bridge; stop it;
#                                                               --purge also deletes DIR (images included)
#
# Layout of DIR: config.toml, network.env (NET, BRIDGE, SUBNET), containerd.sock, containerd.pid,
# containerd.log, root/ (images, snapshots), state/, runc/ (runc's state), cni/net.d/ (the
# conflist: bridge + host-local + portmap), cni/ipam/ (host-local's leases).
# Starting twice is safe (the second start finds it running); so is stopping twice.

CONTAINERD_BIN="${CONTAINERD_BIN:-containerd}"
CTR_BIN="${CTR_BIN:-ctr}"
RUNC_BIN="${RUNC_BIN:-runc}"
CNI_BIN_DIR="${CNI_BIN_DIR:-/usr/lib/cni}"
SANDBOX_IMAGE="${SANDBOX_IMAGE:-localhost/pause:3.9}"

_cd_log() { echo "    containerd: $*"; }
_cd_err() { echo "containerd.sh: $*" >&2; }

containerd_socket() { echo "$1/containerd.sock"; }

# containerd_configure DIR NET BRIDGE SUBNET [--template-only]
# With --template-only no CNI config is written, only the template: the network stays not
# ready until the agent hands a pod CIDR over (from Node.spec.podCIDR), as with the kubelet.
containerd_configure() {
  local dir net bridge subnet template_only=""
  [ "${5:-}" = "--template-only" ] && template_only=1
  [ $# -eq 4 ] || [ -n "$template_only" ] || { _cd_err "usage: configure DIR NET BRIDGE SUBNET [--template-only]"; return 2; }
  mkdir -p "$1" || return 1
  dir=$(cd "$1" && pwd); net="$2"; bridge="$3"; subnet="$4"
  if [ ${#bridge} -gt 15 ]; then _cd_err "bridge name '$bridge' is longer than 15 characters"; return 2; fi
  local sock="$dir/containerd.sock"
  if [ ${#sock} -gt 100 ]; then _cd_err "socket path $sock is too long for a Unix socket"; return 2; fi
  _containerd_check_subnet "$bridge" "$subnet" || return 1
  mkdir -p "$dir/root" "$dir/state" "$dir/runc" "$dir/cni/net.d" "$dir/cni/ipam" || return 1
  printf 'NET=%q\nBRIDGE=%q\nSUBNET=%q\n' "$net" "$bridge" "$subnet" > "$dir/network.env"
  cat > "$dir/config.toml.tmp" <<EOF
# Written by scripts/lib/containerd.sh; regenerated on every configure.
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$sock"

[ttrpc]
  address = "$sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$SANDBOX_IMAGE"
  # Without it RunPodSandbox fails: this machine's root lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  # Network namespaces under state/, so that stopping finds and unmounts exactly ours.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$dir/cni/net.d"
    max_conf_num = 1
    # The agent hands its pod CIDR (flag or Node.spec.podCIDR) over with UpdateRuntimeConfig;
    # when net.d holds no config yet (configure --template-only), containerd then writes
    # net.d/10-containerd-net.conflist from this template.
    conf_template = "$dir/cni/template.conflist"
EOF
  mv "$dir/config.toml.tmp" "$dir/config.toml"
  _containerd_conflist "$net" "$bridge" '{{.PodCIDR}}' "$dir" > "$dir/cni/template.conflist"
  rm -f "$dir/cni/net.d/10-containerd-net.conflist" "$dir/cni/net.d/10-$net.conflist"
  [ -n "$template_only" ] && return 0
  _containerd_conflist "$net" "$bridge" "$subnet" "$dir" > "$dir/cni/net.d/10-$net.conflist.tmp"
  mv "$dir/cni/net.d/10-$net.conflist.tmp" "$dir/cni/net.d/10-$net.conflist"
}

# The CNI conflist of network NET on bridge BRIDGE with SUBNET (bridge + host-local + portmap).
_containerd_conflist() {
  local net="$1" bridge="$2" subnet="$3" dir="$4"
  cat <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$net",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$subnet" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$dir/cni/ipam"
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

# Fails when SUBNET's first address is already routed through a device other than BRIDGE
# (Docker's bridge, the machine's LAN, ...).
_containerd_check_subnet() {
  local bridge="$1" subnet="$2" base first routes
  base="${subnet%/*}"
  first="${base%.*}.$(( ${base##*.} + 1 ))"
  routes=$(ip -4 route show match "$first" 2>/dev/null | grep -v '^default' | grep -v " dev $bridge " || true)
  if [ -n "$routes" ]; then
    _cd_err "subnet $subnet collides with an existing route: $routes"
    return 1
  fi
}

# containerd_pid DIR: the pid of DIR's running containerd, or nothing (status 1).
containerd_pid() {
  local pid
  pid=$(cat "$1/containerd.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q containerd "/proc/$pid/cmdline" 2>/dev/null || return 1
  echo "$pid"
}

# Whether the CRI plugin of DIR's containerd loaded.
_containerd_cri_ok() {
  "$CTR_BIN" -a "$1/containerd.sock" plugins ls 2>/dev/null \
    | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }' | grep -qx ok
}

# containerd_start DIR: starts DIR's containerd (configured before) unless it runs, waits until
# its CRI plugin answers.
containerd_start() {
  local dir
  dir=$(cd "$1" && pwd) || return 1
  [ -f "$dir/config.toml" ] || { _cd_err "$dir/config.toml is missing: configure first"; return 1; }
  local sock="$dir/containerd.sock" pid
  local started="" attempt
  if pid=$(containerd_pid "$dir"); then
    _cd_log "already running (pid $pid, $sock)"
  fi
  for attempt in 1 2; do
    if [ -z "$pid" ]; then
      rm -f "$sock" "$sock.ttrpc"
      _cd_log "starting (socket $sock, log $dir/containerd.log)"
      # setsid: its own session, so a terminal's Ctrl-C does not reach it (down.sh stops it).
      setsid "$CONTAINERD_BIN" --config "$dir/config.toml" --root "$dir/root" --state "$dir/state" \
        --address "$sock" --log-level info >> "$dir/containerd.log" 2>&1 < /dev/null &
      started=$!
      echo "$started" > "$dir/containerd.pid"
    fi
    local i
    for i in $(seq 1 150); do
      if [ -S "$sock" ] && _containerd_cri_ok "$dir"; then
        return 0
      fi
      if ! containerd_pid "$dir" >/dev/null; then
        # Look again at the process started here: while it is alive (the check above can
        # miss it for an instant), waiting for it would block for ever.
        if [ -n "$started" ] && kill -0 "$started" 2>/dev/null; then
          sleep 0.2
          continue
        fi
        local status="unknown"
        if [ -n "$started" ]; then
          wait "$started" 2>/dev/null && status=0 || status=$?
        fi
        _cd_err "containerd exited (status $status); last lines of $dir/containerd.log:"
        tail -20 "$dir/containerd.log" >&2
        # Seen once on a fresh machine: the first start exited at once without a word. A
        # second start is made (and said); a containerd that fails twice is an error.
        if [ "$attempt" = 1 ] && [ -n "$started" ]; then
          _cd_err "starting containerd once more"
          pid=""
          sleep 1
          continue 2
        fi
        return 1
      fi
      sleep 0.2
    done
    break
  done
  _cd_err "containerd's CRI plugin did not come up within 30 s; see $dir/containerd.log"
  tail -20 "$dir/containerd.log" >&2
  return 1
}

# containerd_stop DIR [--purge]: removes every container and sandbox of DIR's containerd (tasks
# killed, containers deleted), stops it, then cleans what may be left even if it had died:
# runc containers, shims, mounts under DIR, the CNI network's iptables rules, bridge and leases.
containerd_stop() {
  local dir purge="${2:-}"
  [ -d "$1" ] || return 0
  dir=$(cd "$1" && pwd) || return 1
  local sock="$dir/containerd.sock" pid
  if pid=$(containerd_pid "$dir"); then
    _containerd_remove_all "$dir"
    _cd_log "stopping (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/containerd.pid" "$sock" "$sock.ttrpc"
  _containerd_runc_cleanup "$dir"
  _containerd_kill_shims "$sock"
  _containerd_unmount_under "$dir"
  _containerd_network_cleanup "$dir"
  rm -rf "$dir/state" "$dir/runc" "$dir/cni/ipam" \
    "$dir/root/io.containerd.grpc.v1.cri/sandboxes" "$dir/root/io.containerd.grpc.v1.cri/containers"
  if [ "$purge" = "--purge" ]; then
    _containerd_unmount_under "$dir"
    rm -rf "$dir"
  fi
}

# Kills and deletes every task and container in every namespace, through containerd.
_containerd_remove_all() {
  local dir="$1" ns ids id i
  local ctr=("$CTR_BIN" -a "$dir/containerd.sock")
  for ns in $("${ctr[@]}" namespaces ls -q 2>/dev/null); do
    ids=$("${ctr[@]}" -n "$ns" tasks ls -q 2>/dev/null)
    if [ -n "$ids" ]; then
      _cd_log "killing $(echo "$ids" | wc -l) task(s) in namespace $ns"
      for id in $ids; do "${ctr[@]}" -n "$ns" tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1; done
      for id in $ids; do
        for i in $(seq 1 50); do
          "${ctr[@]}" -n "$ns" tasks rm -f "$id" >/dev/null 2>&1 && break
          "${ctr[@]}" -n "$ns" tasks ls -q 2>/dev/null | grep -qx "$id" || break
          sleep 0.1
        done
      done
    fi
    ids=$("${ctr[@]}" -n "$ns" containers ls -q 2>/dev/null)
    if [ -n "$ids" ]; then
      _cd_log "removing $(echo "$ids" | wc -l) container(s) in namespace $ns"
      # shellcheck disable=SC2086
      "${ctr[@]}" -n "$ns" containers rm $ids >/dev/null 2>&1
    fi
  done
}

# Containers runc still knows under DIR/runc (when containerd died before removing them).
_containerd_runc_cleanup() {
  local dir="$1" root id
  for root in "$dir"/runc/*/; do
    [ -d "$root" ] || continue
    for id in $("$RUNC_BIN" --root "$root" list -q 2>/dev/null); do
      _cd_log "runc: removing leftover container $id"
      "$RUNC_BIN" --root "$root" kill "$id" KILL >/dev/null 2>&1
      "$RUNC_BIN" --root "$root" delete -f "$id" >/dev/null 2>&1
    done
  done
}

# Shims started for this containerd's socket (matched by their exact -address argument).
_containerd_kill_shims() {
  local sock="$1" p args
  for p in /proc/[0-9]*; do
    args=$(tr '\0' ' ' 2>/dev/null < "$p/cmdline") || continue
    case "$args" in
      *containerd-shim*"-address $sock "*)
        _cd_log "killing leftover shim ${p#/proc/}"
        kill -KILL "${p#/proc/}" 2>/dev/null ;;
    esac
  done
}

# Unmounts every mount point under DIR, deepest first.
_containerd_unmount_under() {
  local dir="$1" m
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || _cd_err "could not unmount $m"
  done
}

# Deletes the iptables rules CNI's bridge and portmap plugins made for NET (they carry the comment
# `name: "NET" id: "..."`), the per-container chains they jump to, the bridge, CNI's cached
# results for NET and host-local's leases.
_containerd_network_cleanup() {
  local dir="$1" NET="" BRIDGE="" SUBNET="" table
  # shellcheck disable=SC1091
  [ -f "$dir/network.env" ] && . "$dir/network.env"
  [ -n "$NET" ] || return 0
  if command -v iptables-save >/dev/null 2>&1; then
    for table in nat filter; do
      _containerd_iptables_sweep "$table" "$NET"
    done
  fi
  if [ -n "$BRIDGE" ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
    _cd_log "deleting bridge $BRIDGE"
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
  rm -f /var/lib/cni/results/"$NET"-* 2>/dev/null || true
  # libcni's cached results of the loopback network of each sandbox this containerd made.
  local sb
  for sb in "$dir"/root/io.containerd.grpc.v1.cri/sandboxes/*/; do
    [ -d "$sb" ] || continue
    sb=$(basename "$sb")
    rm -f /var/lib/cni/results/*-"$sb"-* 2>/dev/null || true
  done
  rm -rf "$dir/cni/ipam"
}

_containerd_iptables_sweep() {
  local table="$1" net="$2" rules chains script
  rules=$(iptables-save -t "$table" 2>/dev/null | grep -F -- "name: \\\"$net\\\" id: " | grep '^-A ')
  [ -n "$rules" ] || return 0
  chains=$(echo "$rules" | grep -oE -- '-j CNI-[A-Za-z0-9-]+' | awk '{ print $2 }' \
    | grep -vE '^CNI-HOSTPORT-(DNAT|SNAT|MASQ|SETMARK)$' | sort -u)
  script="*$table"$'\n'"$(echo "$rules" | sed 's/^-A /-D /')"$'\n'
  local c
  for c in $chains; do script+="-F $c"$'\n'"-X $c"$'\n'; done
  script+="COMMIT"$'\n'
  _cd_log "deleting $(echo "$rules" | wc -l) $table rule(s) and $(echo "$chains" | grep -c .) chain(s) of CNI network $net"
  printf '%s' "$script" | iptables-restore --noflush || _cd_err "iptables-restore failed for network $net"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  cmd="${1:-}"; shift || true
  case "$cmd" in
    configure) containerd_configure "$@" ;;
    start) [ $# -eq 1 ] || { _cd_err "usage: start DIR"; exit 2; }; containerd_start "$1" ;;
    stop) [ $# -ge 1 ] || { _cd_err "usage: stop DIR [--purge]"; exit 2; }; containerd_stop "$@" ;;
    socket) containerd_socket "$1" ;;
    *) sed -n '5,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
fi
