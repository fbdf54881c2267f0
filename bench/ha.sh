#!/bin/sh
# HA pair benchmark (docs/ha.md): two multihome daemons with the real
# keepalived and conntrackd in a pair lab with two shared uplinks. The
# master loses power (interfaces down, processes killed) while a LAN host
# holds 100 TCP flows open through it: how long until new connections
# succeed again, how many flows survive, whether their ct marks were
# synced; then a master whose uplinks all fail (handover after the
# monitor's verdict), one uplink flapping (no role change), the sync link
# cut (exactly one master). Then the split-uplinks pair (gwa has isp1, gwb
# isp2, each using the other's over the transit link): new flows on both
# ISPs, the standby carrying the master's flows past conntrackd's purge
# timeout, the standby's ISP cut, and RUNS power losses of the master
# (40 flows held each time: those through the partner's ISP must survive).
# Needs root, keepalived, conntrackd.
# Usage: bench/ha.sh [RUNS] (default 10 power losses at 100 ms adverts,
# then 3 at keepalived's default 1 s for comparison, then the split pair
# with RUNS/2 power losses; ~7 minutes).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/ha.sh: needs root (network namespaces)" >&2
	exit 1
fi
report=$(mktemp)
out=$(mktemp)
trap 'rm -f "$report" "$out"' EXIT
# failed prints the checks that failed (the test's own error lines).
failed() {
	echo "(some checks failed:)"
	grep -E -- '--- FAIL|_test\.go:[0-9]+: .*(want|did not stop|not within)' "$out" | head -20
}
uptime
for advert in 100ms 1s; do
	runs=${1:-10}
	[ "$advert" = 1s ] && runs=3
	echo "== VRRP adverts every $advert, $runs power losses"
	[ "$advert" = 1s ] && echo "(for comparison: at keepalived's default 1 s adverts the test's ≤ 1 s checks are expected to fail)"
	: >"$report"
	MULTIHOME_HA_RUNS=$runs MULTIHOME_HA_ADVERT=$advert MULTIHOME_HA_REPORT=$report \
		go test ./ha -run '^TestPairSharedUplinks$' -count=1 -timeout 20m -v >"$out" 2>&1 || failed
	cat "$report"
done
runs=$(( ${1:-10} / 2 ))
[ "$runs" -lt 1 ] && runs=1
echo "== split uplinks, VRRP adverts every 100ms, $runs power losses"
: >"$report"
MULTIHOME_HA_RUNS=$runs MULTIHOME_HA_REPORT=$report \
	go test ./ha -run '^TestPairSplitUplinks$' -count=1 -timeout 20m -v >"$out" 2>&1 || failed
cat "$report"
