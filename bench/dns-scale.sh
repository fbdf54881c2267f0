#!/usr/bin/env bash
# DNS at scale: multihome's server with 100, 10K and 100K health-steered
# names (each with an address on two links), on the loopback of a
# throwaway network namespace, server pinned to CPU 0 and dnsperf to CPU
# 1. For each size:
#   1. steady: dnsperf over random names for DURATION seconds;
#   2. flapping: the same while isp1 goes down and up every FLAP (each
#      event rebuilds every name's answers); the server times, for each
#      event, how long until a query for the last name gets the new
#      answer, and how long the rebuild took;
#   3. steady again (steady qps is the mean of 1 and 3).
# Prints per size: start-up time, steady qps, qps while flapping (and the
# ratio), event-to-answer and rebuild times (median, max). Needs root.
#
#   bench/dns-scale.sh                  # DURATION=10 FLAP=1s
#   SIZES="100 10000" bench/dns-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin

DURATION=${DURATION:-10}
FLAP=${FLAP:-1s}
SIZES=${SIZES:-100 10000 100000}
CPU_SERVER=${CPU_SERVER:-0}
CPU_CLIENT=${CPU_CLIENT:-1}

command -v dnsperf >/dev/null || { echo "dnsperf missing: apt-get install -y dnsperf" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

work=$(mktemp -d)
ns="mhbench$$x1-dnsscale"
pid=
cleanup() {
	[ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
run() { ip netns exec "$ns" "$@"; }
go build -o "$work/dnsserve" ./bench/dnsserve

echo "dnsperf -l $DURATION -c 8 -T 1 (CPU $CPU_CLIENT), server on CPU $CPU_SERVER (GOMAXPROCS=2), isp1 flapping every $FLAP; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %8s %10s %12s %7s  %s\n' names start-up "steady qps" "flap qps" ratio "event → new answer, rebuild"
for n in $SIZES; do
	dir="$work/$n"
	mkdir -p "$dir"
	"$work/dnsserve" -write-scale "$dir" -names "$n"
	last="h$((n - 1)).example.com."
	t0=$(date +%s.%N)
	GOMAXPROCS=2 ip netns exec "$ns" taskset -c "$CPU_SERVER" "$work/dnsserve" -config "$dir/multihome.yaml" -flap "$FLAP" -probe "$last" \
		>"$dir/out" 2>"$dir/log" &
	pid=$!
	for _ in $(seq 600); do
		run kdig +short +time=1 +retry=0 -p 5301 @127.0.0.1 "$last" A 2>/dev/null | grep -q 203.0.113 && break
		sleep 0.1
	done
	t1=$(date +%s.%N)
	perf() { run taskset -c "$CPU_CLIENT" dnsperf -s 127.0.0.1 -p 5301 -d "$dir/queries" -l "$DURATION" -c 8 -T 1 2>&1 | awk '/Queries per second:/ {printf "%.0f", $4}'; }
	steady1=$(perf)
	kill -USR1 "$pid"
	flapping=$(perf)
	kill -USR1 "$pid" # stops flapping
	steady2=$(perf)
	# steady: the mean of the runs before and after, so that a change in
	# the machine's load during the runs shows less.
	steady=$(((steady1 + steady2) / 2))
	kill "$pid"
	wait "$pid" || true
	pid=
	printf '%-8s %7.1fs %10s %12s %6.2f  %s\n' "$n" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$steady" "$flapping" \
		"$(awk -v a="$flapping" -v b="$steady" 'BEGIN { print a / b }')" "$(sed 's/^flap //' "$dir/out")"
done
