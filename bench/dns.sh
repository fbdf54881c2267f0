#!/usr/bin/env bash
# DNS benchmark: dnsperf against multihome's DNS server, Knot and gdnsd,
# each serving www.example.com (two addresses, both links healthy) on the
# loopback of a throwaway network namespace, with the same query file.
# Each server gets one thread pinned to CPU 0 and dnsperf runs pinned to
# CPU 1, so the figures are per server thread. Needs root (namespace).
#
#   bench/dns.sh                 # 10 s per server, 8 clients
#   DURATION=5 bench/dns.sh
#
# Prints one line per server: queries per second and the ratio to
# multihome. Servers that are not installed are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin:/usr/sbin

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-8}
CPU_SERVER=${CPU_SERVER:-0}
CPU_CLIENT=${CPU_CLIENT:-1}

command -v dnsperf >/dev/null || { echo "dnsperf missing: apt-get install -y dnsperf" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 1; }

work=$(mktemp -d)
ns="mhbench$$x1-dns"
pids=()
declare -A pid_of
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$ns" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
run() { ip netns exec "$ns" "$@"; }
# start NAME CMD...: runs CMD in the namespace in the background. ip
# execs taskset, which execs the server: $! is the server's pid.
start() {
	local name=$1
	shift
	ip netns exec "$ns" taskset -c "$CPU_SERVER" "$@" 2>"$work/$name.log" &
	pids+=($!)
	pid_of[$name]=$!
}
# cpu_ticks PID: user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

A1=198.51.100.2
A2=198.51.100.18
printf 'www.example.com A\n' >"$work/queries"

# multihome
go build -o "$work/dnsserve" ./bench/dnsserve
cat >"$work/multihome.yaml" <<EOF
links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 198.51.100.17}
dns:
  listen: ["127.0.0.1:5301"]
  udp_sockets: 1
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
        - {name: www, ttl: 30s, records: [{link: isp1, a: $A1}, {link: isp2, a: $A2}]}
EOF
GOMAXPROCS=1 start multihome "$work/dnsserve" -config "$work/multihome.yaml" ${PROFILE:+-cpuprofile "$PROFILE"}
servers=("multihome 5301")

# Knot: the same name as static records.
if command -v knotd >/dev/null; then
	mkdir -p "$work/knot/db"
	cat >"$work/knot/knot.conf" <<EOF
server:
    rundir: "$work/knot"
    listen: 127.0.0.1@5302
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: "$work/knot/db"
zone:
  - domain: example.com
    storage: "$work/knot"
    file: "example.com.zone"
EOF
	cat >"$work/knot/example.com.zone" <<EOF
\$ORIGIN example.com.
@ 3600 SOA ns1 hostmaster 1 3600 600 604800 30
@ 3600 NS ns1
ns1 3600 A 198.51.100.3
www 30 A $A1
www 30 A $A2
EOF
	start knot knotd -c "$work/knot/knot.conf"
	servers+=("knot 5302")
fi

# gdnsd: multifo (all healthy addresses) fed by an extfile monitor in
# direct mode, the closest equivalent of externally driven health.
if command -v gdnsd >/dev/null; then
	mkdir -p "$work/gdnsd/zones" "$work/gdnsd/run" "$work/gdnsd/state"
	cat >"$work/gdnsd/config" <<EOF
options => {
  listen => [ 127.0.0.1 ]
  dns_port => 5303
  udp_threads => 1
  tcp_threads => 1
  run_dir => $work/gdnsd/run
  state_dir => $work/gdnsd/state
}
service_types => {
  health => { plugin => extfile, file => $work/gdnsd/health, direct => true }
}
plugins => {
  multifo => {
    www => { service_types => health, isp1 => $A1, isp2 => $A2 }
  }
}
EOF
	printf '%s => UP/30\n%s => UP/30\n' "$A1" "$A2" >"$work/gdnsd/health"
	cat >"$work/gdnsd/zones/example.com" <<EOF
@ 3600 SOA ns1 hostmaster 1 3600 600 604800 30
@ 3600 NS ns1
ns1 3600 A 198.51.100.3
www 30 DYNA multifo!www
EOF
	start gdnsd gdnsd -c "$work/gdnsd" start
	servers+=("gdnsd 5303")
fi

# Wait until each answers with both addresses.
for s in "${servers[@]}"; do
	set -- $s
	ok=
	for _ in $(seq 50); do
		out=$(run dig +short +time=1 +tries=1 -p "$2" @127.0.0.1 www.example.com A 2>/dev/null || run kdig +short +time=1 +retry=0 -p "$2" @127.0.0.1 www.example.com A 2>/dev/null || true)
		if grep -q "$A1" <<<"$out" && grep -q "$A2" <<<"$out"; then ok=1; break; fi
		sleep 0.2
	done
	[ -n "$ok" ] || { echo "$1 on port $2 did not answer:" >&2; cat "$work/$1.log" >&2 || true; exit 1; }
done

echo "dnsperf -l $DURATION -c $CLIENTS -T 1 (CPU $CPU_CLIENT), one server thread on CPU $CPU_SERVER; query: www.example.com A"
echo "qps is what dnsperf measured; q/cpu-s is queries answered per second of server CPU time (the per-thread capacity when the client is the bottleneck)"
hz=$(getconf CLK_TCK)
base=
for s in "${servers[@]}"; do
	set -- $s
	pid=${pid_of[$1]}
	t0=$(cpu_ticks "$pid")
	if [ -n "${PERFDIR:-}" ]; then
		# PERFDIR=dir: a perf profile of each server (NAME.data) and its
		# syscall and context-switch counts (NAME.stat).
		perf record -F 2000 -g -p "$pid" -o "$PERFDIR/$1.data" -- sleep "$DURATION" >/dev/null 2>&1 &
		perfpid=$!
		perf stat -e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,context-switches \
			-p "$pid" -o "$PERFDIR/$1.stat" -- sleep "$DURATION" >/dev/null 2>&1 &
	fi
	out=$(run taskset -c "$CPU_CLIENT" dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries" -l "$DURATION" -c "$CLIENTS" -T 1 2>&1)
	t1=$(cpu_ticks "$pid")
	[ -z "${PERFDIR:-}" ] || wait "$perfpid" || true
	qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
	done_q=$(awk '/Queries completed:/ {print $3}' <<<"$out")
	lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
	lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
	qcpu=$(awk -v q="$done_q" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", q / c; else print "-" }')
	[ -n "$base" ] || base=$qcpu
	ratio=$(awk -v a="$qcpu" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
	printf '%-10s %9.0f qps  lost %-6s avg latency %ss  server CPU %5ss  %7s q/cpu-s  (%s x multihome)\n' "$1" "$qps" "$lost" "$lat" "$cpu" "$qcpu" "$ratio"
done
