#!/usr/bin/env bash
# Runs every benchmark (make bench). Each works only inside throwaway lab
# namespaces and stops by itself; needs root. Figures and their meaning:
# docs/monitor.md, docs/outbound.md, docs/dns.md.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== link monitor: time from fault to down (bench/detect.sh)"
bench/detect.sh "${TRIALS:-25}"
echo "== outbound datapath: failover, throughput, rule updates (bench/outbound.sh)"
TRIALS=${TRIALS:-20} bench/outbound.sh
echo "== scale: cost against size (bench/scale.sh, docs/scale.md)"
bench/scale.sh
echo "== HA pair: takeover, flows surviving (bench/ha.sh)"
bench/ha.sh "${HA_RUNS:-10}"
if [ -x bench/dns.sh ]; then
  echo "== inbound DNS: queries per second (bench/dns.sh)"
  bench/dns.sh
fi
echo "== MPTCP bonding: throughput, blackhole, proxy cost, bad input (bench/mptcp.sh)"
bench/mptcp.sh
