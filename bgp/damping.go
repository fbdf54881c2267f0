package bgp

import (
	"math"
	"time"

	"github.com/multihome/multihome/config"
)

// penaltyPerFlap is what one loss of our announcements costs.
const penaltyPerFlap = 1000

// damping is one neighbour's flap penalty.
type damping struct {
	penalty    float64
	at         time.Time // when penalty was computed
	suppressed bool
}

// value is the penalty decayed to now.
func (d *damping) value(c config.BGPDamping, now time.Time) float64 {
	if d.penalty == 0 {
		return 0
	}
	return d.penalty * math.Exp2(-now.Sub(d.at).Seconds()/c.HalfLife.D().Seconds())
}

// flap records one loss of the announcements at now; it reports whether
// the neighbour became suppressed.
func (d *damping) flap(c config.BGPDamping, now time.Time) bool {
	d.penalty = d.value(c, now) + penaltyPerFlap
	d.at = now
	if !d.suppressed && d.penalty > float64(c.Suppress) {
		d.suppressed = true
		return true
	}
	return false
}

// reusable is when the penalty falls below reuse.
func (d *damping) reusable(c config.BGPDamping) time.Time {
	if d.penalty <= float64(c.Reuse) {
		return d.at
	}
	return d.at.Add(time.Duration(c.HalfLife.D().Seconds() * math.Log2(d.penalty/float64(c.Reuse)) * float64(time.Second)))
}
