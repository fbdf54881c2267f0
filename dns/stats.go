package dns

import (
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"
)

// nameCounters count the answers of one name under one policy.
type nameCounters struct {
	name, policy string
	answers      atomic.Uint64 // positive answers with addresses
	allDown      atomic.Uint64 // answers given while every link was down
	servfail     atomic.Uint64
}

type counters struct {
	queries, udp, tcp      atomic.Uint64
	rcodes                 [24]atomic.Uint64
	truncated              atomic.Uint64
	rrlDropped, rrlSlipped atomic.Uint64
	xfrOut, xfrRefused     atomic.Uint64
	notifySent, notifyFail atomic.Uint64
	pushed, pushFail       atomic.Uint64
	pushAdded, pushRemoved atomic.Uint64
	serialBumps            atomic.Uint64
	answerChanges          atomic.Uint64
	// TCP: open connections; connections refused over the total and the
	// per-client cap; connections closed idle, inside a message, at the
	// query cap, on a message that cannot be answered.
	tcpOpen                         atomic.Int64
	tcpRejectTotal, tcpRejectClient atomic.Uint64
	tcpClosedIdle, tcpClosedPartial atomic.Uint64
	tcpClosedQueries, tcpClosedBad  atomic.Uint64
	rrlEvicted                      atomic.Uint64
	rebuilds                        atomic.Uint64
	rebuildNanos                    atomic.Int64 // the last rebuild's duration
	namesMu                         sync.Mutex
	names                           map[string]*nameCounters
}

func (c *counters) name(name, policy string) *nameCounters {
	c.namesMu.Lock()
	defer c.namesMu.Unlock()
	if c.names == nil {
		c.names = map[string]*nameCounters{}
	}
	k := name + " " + policy
	n := c.names[k]
	if n == nil {
		n = &nameCounters{name: name, policy: policy}
		c.names[k] = n
	}
	return n
}

func (c *counters) rcode(rc int) {
	if rc >= 0 && rc < len(c.rcodes) {
		c.rcodes[rc].Add(1)
	}
}

// Stats is a snapshot of the server's counters, for metrics and tests.
type Stats struct {
	Queries    uint64 // queries received (UDP and TCP, including dropped)
	UDP, TCP   uint64
	Rcodes     map[string]uint64 // responses by RCODE name
	Truncated  uint64            // UDP responses sent with TC=1
	RRLDropped uint64            // responses dropped by rate limiting
	RRLSlipped uint64            // rate-limited responses sent truncated instead
	// Zone transfers served and refused.
	TransfersOut, TransfersRefused uint64
	// NOTIFY messages acknowledged by a secondary, and attempts that failed.
	NotifySent, NotifyFailed uint64
	// RFC 2136 updates accepted by the primary, failed attempts, and the
	// records they added and removed.
	UpdatesPushed, UpdateFailures uint64
	RecordsAdded, RecordsRemoved  uint64
	// SerialBumps counts serial changes; AnswerChanges counts changes of a
	// name's published addresses.
	SerialBumps, AnswerChanges uint64
	// TCPOpen is the number of open TCP connections; TCPRejected counts
	// connections closed at accept by the total cap ("total") or the
	// per-client cap ("client"); TCPClosed counts connections the server
	// closed by reason: idle, partial (a message begun and not finished
	// in time), max_queries, bad_message.
	TCPOpen     int64
	TCPRejected map[string]uint64
	TCPClosed   map[string]uint64
	// RRLEvicted counts rate-limit buckets evicted because the table was
	// full of active clients.
	RRLEvicted uint64
	// Rebuilds counts the views built (one per batch of link events or
	// reload); LastRebuild is how long the last one took.
	Rebuilds    uint64
	LastRebuild time.Duration
	// Serials is each zone's current serial.
	Serials map[string]uint32
	// Names counts answers by name and policy.
	Names []NameStats
}

// NameStats counts the answers of one name under one policy.
type NameStats struct {
	Name, Policy string
	Answers      uint64 // answers with addresses while some link was usable
	AllDown      uint64 // answers given under the all-down rule
	Servfail     uint64 // SERVFAILs under all_down: servfail
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	c := &s.ctr
	st := Stats{
		Queries:          c.queries.Load(),
		UDP:              c.udp.Load(),
		TCP:              c.tcp.Load(),
		Rcodes:           map[string]uint64{},
		Truncated:        c.truncated.Load(),
		RRLDropped:       c.rrlDropped.Load(),
		RRLSlipped:       c.rrlSlipped.Load(),
		TransfersOut:     c.xfrOut.Load(),
		TransfersRefused: c.xfrRefused.Load(),
		NotifySent:       c.notifySent.Load(),
		NotifyFailed:     c.notifyFail.Load(),
		UpdatesPushed:    c.pushed.Load(),
		UpdateFailures:   c.pushFail.Load(),
		RecordsAdded:     c.pushAdded.Load(),
		RecordsRemoved:   c.pushRemoved.Load(),
		SerialBumps:      c.serialBumps.Load(),
		AnswerChanges:    c.answerChanges.Load(),
		Serials:          map[string]uint32{},
		TCPOpen:          c.tcpOpen.Load(),
		TCPRejected:      map[string]uint64{"total": c.tcpRejectTotal.Load(), "client": c.tcpRejectClient.Load()},
		TCPClosed: map[string]uint64{"idle": c.tcpClosedIdle.Load(), "partial": c.tcpClosedPartial.Load(),
			"max_queries": c.tcpClosedQueries.Load(), "bad_message": c.tcpClosedBad.Load()},
		RRLEvicted:  c.rrlEvicted.Load(),
		Rebuilds:    c.rebuilds.Load(),
		LastRebuild: time.Duration(c.rebuildNanos.Load()),
	}
	for i := range c.rcodes {
		if n := c.rcodes[i].Load(); n > 0 {
			name := mdns.RcodeToString[i]
			if name == "" {
				name = "RCODE" + strconv.Itoa(i)
			}
			st.Rcodes[name] = n
		}
	}
	if v := s.view.Load(); v != nil {
		for _, zv := range v.all {
			st.Serials[zv.z.origin] = zv.serial
		}
	}
	c.namesMu.Lock()
	for _, n := range c.names {
		st.Names = append(st.Names, NameStats{Name: n.name, Policy: n.policy, Answers: n.answers.Load(), AllDown: n.allDown.Load(), Servfail: n.servfail.Load()})
	}
	c.namesMu.Unlock()
	sort.Slice(st.Names, func(i, j int) bool {
		if st.Names[i].Name != st.Names[j].Name {
			return st.Names[i].Name < st.Names[j].Name
		}
		return st.Names[i].Policy < st.Names[j].Policy
	})
	return st
}
