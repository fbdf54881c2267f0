// Package bond carries LAN TCP connections over every healthy link at
// once: the gateway's transparent proxy ([Proxy]) takes the connections
// the outbound ruleset redirects to it and relays each over one MPTCP
// connection (one subflow per healthy link, from the mptcp path manager)
// to an aggregator ([Aggregator], `multihome aggregate`), which connects
// to the original destination.
//
// Each MPTCP connection starts with a small header ([Header]): the
// original destination, a nonce and a timestamp, authenticated with
// HMAC-SHA256 under a pre-shared key. The aggregator drops a connection
// whose MAC is wrong, whose timestamp is out of the window or whose nonce
// it has seen, without answering, so it is never an open proxy.
package bond
