// Package dns is multihome's authoritative DNS server: it answers for the
// configured zones with the addresses of the links that are healthy right
// now, and can keep an external primary in sync with RFC 2136 updates.
//
// A name has one address per link (config dns.zones[].names[]). Every link
// event from the monitor rebuilds an immutable view of the answers (which
// addresses each name may return, by policy: all, weighted, failover, first
// N), bumps the zone's SOA serial when that changes, sends NOTIFY to the
// secondaries and queues an update for the push primary. The query path
// only reads the current view: no locks, no waiting on the monitor.
//
// The package owns its sockets: several SO_REUSEPORT UDP sockets and a TCP
// listener per configured address. It answers queries (QUERY opcode, class
// IN), AXFR and IXFR (as a full transfer) to allowed secondaries, and
// nothing else: no recursion, REFUSED outside its zones, RFC 8482 minimal
// answers to ANY over UDP, EDNS(0) with truncation and TCP fallback, ECS
// echoed with scope /0, and response rate limiting per client prefix.
//
// See docs/dns.md for the design and the configuration reference.
package dns
