#!/bin/sh
# Chaos soak (docs/chaos.md): a 3-ISP lab with LAN traffic (short
# connections and held ones), random faults every 1-5 s (blackhole, 30 %
# loss, carrier loss, saturation, flaps), random SIGHUP reloads with valid
# and invalid configs, random SIGKILL + restart of the daemon; the
# invariants are checked over the whole run and printed as a table (also
# written to bench/chaos-results.md). Needs root.
# Usage: bench/chaos.sh [MINUTES] (default 30). make test runs 1 minute.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench/chaos.sh: needs root (network namespaces)" >&2
	exit 1
fi
m="${1:-30}"
MULTIHOME_CHAOS_MINUTES="$m" MULTIHOME_CHAOS_REPORT="$(pwd)/bench/chaos-results.md" \
	go test ./e2e -run '^TestChaos$' -count=1 -v -timeout "$((m + 15))m" |
	grep -vE '^ +time=' | sed -n '/chaos soak:/,$p'
