// Package mptcp drives the kernel's MPTCP path manager (RFC 8684) from
// link health, over generic netlink (family "mptcp_pm").
//
// Every usable link's address is an endpoint: "subflow" (and "signal" when
// configured), "backup" while the link is degraded or drained, removed
// while it is down or waits out its hold-down. An MPTCP connection of the
// machine then has one subflow per healthy link and survives the loss of
// any of them. State is declarative: [Desired] computes the endpoints and
// limits for a config and the links' states, and [Manager.Set] adds,
// changes and deletes only what differs, among the endpoint IDs multihome
// owns; the operator's endpoints (other IDs) are left alone.
package mptcp
