#!/usr/bin/env bash
# Installs what Cairn's tests and lab need on a fresh Debian machine:
# routers, tools and the container runtime of the lab's real nodes
# (containerd, runc, the reference CNI plugins) from apt, and the pinned
# etcd, kube-apiserver, kubectl, kubelet, kube-proxy, kube-scheduler and
# kube-controller-manager built from the Go module proxy (cached; rebuilt
# only when the pin changes). Safe to run again: it installs only what is
# missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A need=(
  [bird]=bird2 [vtysh]=frr [iperf3]=iperf3 [ping]=iputils-ping
  [tcpdump]=tcpdump [nft]=nftables [iptables]=iptables [ip]=iproute2
  [protoc]=protobuf-compiler [gobgpd]=gobgpd
  [containerd]=containerd [runc]=runc [/usr/lib/cni/portmap]=containernetworking-plugins
  [nsenter]=util-linux
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/lib/frr/$cmd" ] || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages (run as root to install): ${missing[*]}" >&2
  else
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# The Debian packages start their daemons; the lab and tests run their own
# instances in namespaces, so the system ones are not needed (a system
# containerd would also own the host's /run/containerd).
if [ "$(id -u)" -eq 0 ]; then
  for svc in bird frr gobgpd containerd; do
    systemctl stop "$svc" >/dev/null 2>&1 || true
  done
  # Mount points of the lab's real nodes (internal/lab privatePaths): each
  # node covers them with directories of its own, inside its own mount
  # namespace, and they stay empty here. Made before any test runs, so
  # that no lab creates them while a test watches the host for changes.
  mkdir -p /run/containerd /var/lib/kubelet /var/log/pods /var/log/containers \
    /var/lib/cni /etc/cni/net.d /opt/cni/bin /run/cairn /var/lib/cairn
  [ -e /run/xtables.lock ] || : > /run/xtables.lock
fi
internal/controlplane/build/build.sh
