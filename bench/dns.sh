#!/usr/bin/env bash
# DNS benchmark: dnsperf against multihome's DNS server, Knot and gdnsd,
# each serving the same example.com on the loopback of a throwaway
# network namespace: health-steered www (two A, two AAAA) and api (two
# A), both links healthy, and static records. Each server is pinned to
# CPU 0 (all its threads) and dnsperf to CPU 1. Two workloads:
#   www    www.example.com A only (the original workload);
#   mixed  steered and static names, A/AAAA/MX, NXDOMAIN and NODATA,
#          every other query with EDNS, some names in mixed case
#          (bench/dnsserve -mixed-queries writes it).
# Needs root (namespace).
#
#   bench/dns.sh                 # 10 s per server and workload, 8 clients
#   DURATION=5 bench/dns.sh
#   PERFDIR=/tmp/p bench/dns.sh  # also perf profiles and syscall counts
#
# Prints per workload one line per server: qps (what dnsperf measured),
# queries per second of server CPU, and both as a ratio to gdnsd.
# Servers that are not installed are skipped.
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
B1=198.51.100.4
B2=198.51.100.20
C1=2001:db8:1::2
C2=2001:db8:2::2
printf 'www.example.com A\n' >"$work/queries.www"
# The static part of the zone, the same for every server.
static_zone() {
	cat <<EOF
@ 3600 SOA ns1 hostmaster 1 3600 600 604800 30
@ 3600 NS ns1
@ 3600 MX 10 mail
ns1 3600 A 198.51.100.3
mail 3600 A 198.51.100.25
mail 3600 AAAA 2001:db8::25
static 3600 A 198.51.100.40
EOF
}

# multihome
go build -o "$work/dnsserve" ./bench/dnsserve
"$work/dnsserve" -mixed-queries "$work/queries.mixed"
{ echo '$ORIGIN example.com.'; static_zone; } >"$work/static.zone"
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
      file: $work/static.zone
      names:
        - {name: www, ttl: 30s, records: [{link: isp1, a: $A1, aaaa: "$C1"}, {link: isp2, a: $A2, aaaa: "$C2"}]}
        - {name: api, ttl: 30s, records: [{link: isp1, a: $B1}, {link: isp2, a: $B2}]}
EOF
# GOMAXPROCS=2: the UDP reader blocks in recvmmsg; with a second P idle
# the runtime leaves the reader's P alone instead of handing it to
# another thread on every read (all threads are on CPU 0 all the same).
GOMAXPROCS=2 start multihome "$work/dnsserve" -config "$work/multihome.yaml" ${PROFILE:+-cpuprofile "$PROFILE"}
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
	{
		echo '$ORIGIN example.com.'
		static_zone
		printf 'www 30 A %s\nwww 30 A %s\nwww 30 AAAA %s\nwww 30 AAAA %s\n' "$A1" "$A2" "$C1" "$C2"
		printf 'api 30 A %s\napi 30 A %s\n' "$B1" "$B2"
	} >"$work/knot/example.com.zone"
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
    www => { service_types => health, addrs_v4 => { isp1 => $A1, isp2 => $A2 }, addrs_v6 => { isp1 => $C1, isp2 => $C2 } }
    api => { service_types => health, isp1 => $B1, isp2 => $B2 }
  }
}
EOF
	printf '%s => UP/30\n' "$A1" "$A2" "$B1" "$B2" "$C1" "$C2" >"$work/gdnsd/health"
	{
		static_zone
		echo 'www 30 DYNA multifo!www'
		echo 'api 30 DYNA multifo!api'
	} >"$work/gdnsd/zones/example.com"
	start gdnsd gdnsd -c "$work/gdnsd" start
	servers+=("gdnsd 5303")
fi

# Wait until each answers with both addresses.
for s in "${servers[@]}"; do
	set -- $s
	ok=
	for _ in $(seq 50); do
		out=$(run dig +short +time=1 +tries=1 -p "$2" @127.0.0.1 www.example.com A 2>/dev/null || run kdig +short +time=1 +retry=0 -p "$2" @127.0.0.1 www.example.com A 2>/dev/null || true)
		out6=$(run dig +short +time=1 +tries=1 -p "$2" @127.0.0.1 www.example.com AAAA 2>/dev/null || run kdig +short +time=1 +retry=0 -p "$2" @127.0.0.1 www.example.com AAAA 2>/dev/null || true)
		if grep -q "$A1" <<<"$out" && grep -q "$A2" <<<"$out" && grep -q "$C1" <<<"$out6"; then ok=1; break; fi
		sleep 0.2
	done
	[ -n "$ok" ] || { echo "$1 on port $2 did not answer:" >&2; cat "$work/$1.log" >&2 || true; exit 1; }
done

echo "dnsperf -l $DURATION -c $CLIENTS -T 1 (CPU $CPU_CLIENT); each server pinned to CPU $CPU_SERVER; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "qps: what dnsperf measured; q/cpu-s: queries answered per second of server CPU time (user + system, all threads)"
hz=$(getconf CLK_TCK)
# measure NAME PORT WORKLOAD: one dnsperf run; sets qps, qcpu, line.
measure() {
	local pid=${pid_of[$1]} flags=()
	[ "$3" = www ] || flags=(-B)
	local t0 t1 out perfpid=
	t0=$(cpu_ticks "$pid")
	if [ -n "${PERFDIR:-}" ]; then
		# PERFDIR=dir: a perf profile of each server and workload
		# (NAME-WORKLOAD.data) and its syscall and context-switch counts
		# (.stat).
		perf record -F 2000 -g -p "$pid" -o "$PERFDIR/$1-$3.data" -- sleep "$DURATION" >/dev/null 2>&1 &
		perfpid=$!
		perf stat -e syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,context-switches \
			-p "$pid" -o "$PERFDIR/$1-$3.stat" -- sleep "$DURATION" >/dev/null 2>&1 &
	fi
	out=$(run taskset -c "$CPU_CLIENT" dnsperf -s 127.0.0.1 -p "$2" -d "$work/queries.$3" "${flags[@]}" -l "$DURATION" -c "$CLIENTS" -T 1 2>&1)
	t1=$(cpu_ticks "$pid")
	[ -z "$perfpid" ] || wait "$perfpid" || true
	qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' <<<"$out")
	local done_q lost lat cpu codes
	done_q=$(awk '/Queries completed:/ {print $3}' <<<"$out")
	lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
	lat=$(awk '/Average Latency/ {print $4}' <<<"$out")
	codes=$(awk '/Response codes:/ {$1 = $2 = ""; print}' <<<"$out")
	cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
	qcpu=$(awk -v q="$done_q" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", q / c; else print 0 }')
	line=$(printf '%-10s %9s qps  lost %-5s latency %ss  server CPU %5ss  %7s q/cpu-s  rcodes%s' "$1" "$qps" "$lost" "$lat" "$cpu" "$qcpu" "$codes")
}
for w in www mixed; do
	echo
	echo "workload $w"
	declare -A res_qps=() res_qcpu=()
	for s in "${servers[@]}"; do
		set -- $s
		measure "$1" "$2" "$w"
		res_qps[$1]=$qps
		res_qcpu[$1]=$qcpu
		echo "$line"
	done
	if [ -n "${res_qps[gdnsd]:-}" ]; then
		for n in multihome knot; do
			[ -n "${res_qps[$n]:-}" ] || continue
			awk -v n="$n" -v w="$w" -v a="${res_qps[$n]}" -v b="${res_qps[gdnsd]}" -v c="${res_qcpu[$n]}" -v d="${res_qcpu[gdnsd]}" \
				'BEGIN { printf "%-10s / gdnsd (%s): %.2f x qps, %.2f x q/cpu-s\n", n, w, a / b, c / d }'
		done
	fi
done
