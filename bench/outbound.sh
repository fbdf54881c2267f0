#!/usr/bin/env bash
# Outbound datapath benchmarks (docs/outbound.md, "Figures"). Runs only in
# throwaway lab namespaces; needs root, nft, conntrack support and iperf3.
# Bounded: about 3-4 minutes with the default 20 trials.
#
#   bench/outbound.sh                 # all
#   bench/outbound.sh FailoverFake    # one (TestBench<NAME>)
#   TRIALS=5 bench/outbound.sh        # fewer trials
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-bench/outbound-results.txt}")
: > "$out"
run=${1:-FailoverFake|FailoverMonitor|Throughput|RuleUpdate}
MULTIHOME_BENCH=1 MULTIHOME_BENCH_TRIALS=${TRIALS:-20} MULTIHOME_BENCH_OUT="$out" \
	go test ./outbound/ -run "^TestBench(${run})\$" -count=1 -v -timeout 15m 2>&1 |
	grep -E '^(=== RUN|--- |PASS|FAIL|ok)|bench_test.go' | grep -v 'level=' || true
echo "--- results ($out)"
cat "$out"
