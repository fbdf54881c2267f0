#!/usr/bin/env bash
# Installs the Debian packages that multihome's demo and tests use, only
# when something is missing. Needs root (apt-get).
set -euo pipefail

# package:command pairs; the command tells whether the package is there.
need=(
  iproute2:ip
  nftables:nft
  iputils-ping:ping
  iperf3:iperf3
  knot:knotd
  knot-dnsutils:kdig
  dnsperf:dnsperf
  conntrack:conntrack
  chromium:chromium
  frr:vtysh
  tcpdump:tcpdump
  bird2:bird
  kea-dhcp6-server:kea-dhcp6
  radvd:radvd
  keepalived:keepalived
  conntrackd:conntrackd
  zsh:zsh
  groff-base:groff
)
missing=()
for pc in "${need[@]}"; do
  pkg=${pc%%:*} cmd=${pc##*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The knot, frr, bird2, kea-dhcp6-server, radvd, keepalived and conntrackd
# packages may start system daemons in the root namespace where systemd
# runs; the tests run their own in lab namespaces and must not have those
# around (a system kea-dhcp6 would answer DHCPv6 on the machine's own
# interfaces; a system keepalived or conntrackd would speak VRRP or sync
# conntrack there).
if command -v systemctl >/dev/null 2>&1; then
  for svc in knot frr bird kea-dhcp6-server radvd keepalived conntrackd; do
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc" || true
    fi
  done
  for svc in kea-dhcp6-server radvd keepalived conntrackd; do
    if systemctl is-enabled --quiet "$svc" 2>/dev/null; then
      systemctl disable "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
go version >/dev/null
