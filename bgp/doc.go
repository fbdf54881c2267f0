// Package bgp runs multihome's embedded BGP speaker (GoBGP as a library).
//
// It announces the site's own prefixes to every upstream neighbour, with a
// default-reject export policy so nothing else can leak, per-neighbour
// prepends (backup role) and communities, and follows the link monitor:
// when a link is not usable the announcements to that link's neighbours
// are withdrawn (or prepended, on_down: prepend), and restored once the
// monitor declares the link usable again, after its hold-down.
package bgp
