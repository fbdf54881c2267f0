#!/bin/sh
# BGP benchmark: time from a fault on ISP 1 to the moment FRR (bgpd, in
# the ISP's namespace) no longer has the site's route: a blackhole beyond
# the ISP router (withdrawal over the live session), and the ISP router
# unreachable over the first hop with and without BFD. Needs root, FRR.
# Usage: bench/bgp.sh [TRIALS] (default 20; ~12 minutes).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/bgp.sh: needs root (network namespaces)" >&2
	exit 1
fi
MULTIHOME_BENCH=1 MULTIHOME_BENCH_TRIALS="${1:-20}" \
	go test ./bgp -run '^TestBenchBGP$' -count=1 -v -timeout 30m |
	grep -E '^(blackhole|first hop) |^(ok|FAIL|---)'
# BFD at 100 ms x 3 against FRR's bfdd (profile "fast"): the same first-hop
# fault, measured from FRR's view (docs/bfd.md).
MULTIHOME_BFD_TRIALS="${1:-20}" \
	go test ./bgp -run '^TestLabBFDFast$' -count=1 -v -timeout 30m |
	grep -E '100 ms × 3, |^(ok|FAIL|---)'
