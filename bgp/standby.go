package bgp

import "fmt"

// SetStandby makes the speaker the standby node of an HA pair (the
// daemon calls it with every role change of its ha node) or, with false,
// the master. The standby keeps every session established but sends its
// neighbours nothing: its announcements are withdrawn, so inbound
// traffic reaches only the master, which holds the virtual addresses and
// the connection state (the standby's conntrack guard would drop the
// replies of flows it has not seen open). Back to master, the
// announcements go out at once over the sessions already up: a takeover
// needs no session setup. It is safe to call from any goroutine, before
// or during Run; the change is logged in the decision log like every
// announcement change.
func (s *Speaker) SetStandby(standby bool) {
	s.mu.Lock()
	changed := s.standby != standby
	s.standby = standby
	s.mu.Unlock()
	if !changed {
		return
	}
	select {
	case s.standbyC <- struct{}{}:
	default:
	}
}

// roleChanged applies the role SetStandby set (in Run's goroutine).
func (s *Speaker) roleChanged(st *runState) {
	s.mu.Lock()
	standby := s.standby
	s.mu.Unlock()
	if standby == st.standby {
		return
	}
	st.standby = standby
	s.apply(st.ctx, st, roleReason(standby))
}

func roleReason(standby bool) string {
	if standby {
		return "ha: this node is the standby, the master announces (sessions kept)"
	}
	return "ha: this node became master"
}

// standDown withdraws every announcement of a standby node: what the
// links allow is kept for when it becomes master again.
func standDown(ann []announce, standby bool) []announce {
	if !standby {
		return ann
	}
	for i := range ann {
		ann[i] = announce{Withdraw: true}
	}
	return ann
}

// startReason is the decision log's reason for a neighbour's first
// decision.
func startReason(link string, usable, standby bool) string {
	r := fmt.Sprintf("bgp started: link %s %s", link, map[bool]string{true: "usable", false: "not usable"}[usable])
	if standby {
		r += "; " + roleReason(true)
	}
	return r
}
