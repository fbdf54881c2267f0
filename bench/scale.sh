#!/usr/bin/env bash
# Scale benchmarks: how each cost grows with the size of the work
# (docs/scale.md). Every table comes from one run of one Go test, inside
# throwaway network namespaces (conntrack entries are created
# synthetically in a namespace's own table; 250K is this machine's cap,
# the root namespace's nf_conntrack_max, which is not changed) or on a
# unix socket (the API). Needs root, nft and the conntrack modules.
# Bounded: about 5-10 minutes in all; each part stops by itself.
#
#   bench/scale.sh                  # everything -> bench/scale-results.md
#   bench/scale.sh conntrack        # one part: conntrack failover apply sticky sse dns
#   TRIALS=3 bench/scale.sh failover
#   SIZES=10000,100000 bench/scale.sh conntrack   # other sizes
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
out=$(realpath -m "${OUT:-bench/scale-results.md}")
parts=${*:-conntrack failover apply sticky sse dns}
{
	echo "# bench/scale.sh ($parts)"
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, kernel $(uname -r), load average at start $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
} > "$out"

# gotest PKG TEST TITLE: runs one benchmark test, appending its table.
gotest() {
	printf '\n## %s\n' "$3" >> "$out"
	echo "== $3"
	MULTIHOME_BENCH=1 MULTIHOME_BENCH_OUT="$out" MULTIHOME_BENCH_TRIALS=${TRIALS:-5} \
		MULTIHOME_BENCH_SIZES=${SIZES:-} \
		go test "./$1/" -run "^$2\$" -count=1 -v -timeout 30m 2>&1 |
		grep -E '^(--- |FAIL|ok|panic)|\| ' | grep -v 'level=' || true
}

for p in $parts; do
	case $p in
	conntrack) gotest outbound TestBenchScaleConntrack "Conntrack entries: scrape, background count, flush, migration (half the entries on each of two links)" ;;
	failover) gotest outbound TestBenchScaleFailover "Blackhole with N flows on the failed link: first new LAN connection via the other link (fake monitor: detection excluded)" ;;
	apply) gotest outbound TestBenchScaleApply "Ruleset apply: links x rules" ;;
	sticky) gotest outbound TestBenchScaleSticky "Sticky-set sources" ;;
	sse) gotest api TestBenchScaleSSE "API event stream: server-sent-event clients" ;;
	dns)
		printf '\n## Steered DNS names (bench/dns-scale.sh)\n' >> "$out"
		if [ -x bench/dns-scale.sh ]; then
			echo "== DNS names (bench/dns-scale.sh)"
			bench/dns-scale.sh 2>&1 | tee -a "$out"
		else
			echo "bench/dns-scale.sh is not there yet: no DNS rows." | tee -a "$out"
		fi
		;;
	*) echo "unknown part $p (conntrack failover apply sticky sse dns)" >&2; exit 2 ;;
	esac
done
echo "--- results: $out"
cat "$out"
