#!/bin/sh
# Detection-time benchmark of the link monitor: median and p95 time from
# fault injection to the link's Down event, for blackholes and carrier
# loss, at 15 and 20 probe packets/s per link, in a lab of network
# namespaces. Needs root. Usage: bench/detect.sh [TRIALS] (default 25).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/detect.sh: needs root (network namespaces)" >&2
	exit 1
fi
MULTIHOME_BENCH=1 MULTIHOME_BENCH_TRIALS="${1:-25}" \
	go test ./monitor -run '^TestBenchDetect$' -count=1 -v -timeout 30m |
	grep -E '^(blackhole|carrier-down) |^(ok|FAIL|---)'
