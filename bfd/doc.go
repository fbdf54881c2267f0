// Package bfd is multihome's own Bidirectional Forwarding Detection:
// asynchronous single-hop BFD (RFC 5880, RFC 5881) over IPv4 and IPv6 UDP 3784,
// with a packet codec, a session state machine driven by an injected
// clock, and a Linux runner whose sockets are bound to the link's
// interface and send and require TTL (hop limit) 255.
package bfd
