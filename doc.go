// Package multihome is the root of the multihome repository: a multihoming
// controller for Linux edge gateways. The code lives in the subpackages
// (see README.md for the map); this package only holds repository-wide
// tests.
package multihome
