#!/usr/bin/env bash
# Bonding and MPTCP figures (docs/mptcp.md, "Figures"): one TCP download
# through the bond over two links shaped to 20 Mbit/s against plain
# steering; a blackhole of the link of the first subflow (and the same for
# a plain download, the control); the proxy's cost on unshaped links (1 and
# 100 connections); bad input at the aggregator. Runs only in throwaway lab
# namespaces, needs root; bounded: about 1-2 minutes.
#
#   bench/mptcp.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-bench/mptcp-results.txt}")
{ echo "# bench/mptcp.sh $(date -u +%FT%TZ), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$out"
MULTIHOME_BENCH=1 MULTIHOME_BENCH_OUT="$out" \
	go test ./e2e/ -run '^TestBenchMPTCP$' -count=1 -v -timeout 10m 2>&1 |
	grep -E '^(=== RUN|--- |PASS|FAIL|ok)|_test.go' | grep -v 'level=' || true
echo "--- results ($out)"
cat "$out"
