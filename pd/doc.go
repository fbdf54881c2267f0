// Package pd is a DHCPv6 client for prefix delegation (RFC 8415, IA_PD):
// on one link's interface it asks its provider for a prefix (Solicit with
// a length hint, Advertise, Request, Reply), renews it at T1, rebinds at
// T2, loses it when its valid lifetime ends, retransmits with RFC 8415's
// backoff, and can use Rapid Commit. The binding is kept in a state file
// across restarts (a restart uses the saved lease at once and renews it;
// only a client told to Drop releases its prefix). One goroutine owns each
// lease; every change (bound, renewed, another prefix, lost) is reported
// through a callback, from which the daemon fills the learned prefix into
// the config it applies (ipv6.prefixes entries with dhcpv6_pd, see
// docs/ipv6.md). Router watches the link's router advertisements, so that
// a link's gateway6 need not be configured.
package pd
