package route

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Watch timing: a burst of kernel events is answered by one repair pass,
// debounce after its last event, and passes are at least minRepairGap
// apart (or ten times the last pass's duration, for owners with big
// tables, e.g. a BGP full table whose own churn also raises events).
const (
	debounce     = 100 * time.Millisecond
	minRepairGap = time.Second
)

// Watch repairs drift until ctx ends: it subscribes to the kernel's rule
// and route events in the namespace ns (netns.None() for the process's
// own), and after any rule event at a leased priority or route deletion
// in a leased table, puts every owner's last desired state back ([Set]
// again). What it changes is logged and counted in
// multihome_route_repairs_total{owner}. It returns ctx's error, or the
// subscription's.
func (m *Manager) Watch(ctx context.Context, ns netns.NsHandle, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	s, err := nl.SubscribeAt(ns, netns.None(), unix.NETLINK_ROUTE,
		unix.RTNLGRP_IPV4_RULE, unix.RTNLGRP_IPV6_RULE, unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE)
	if err != nil {
		return fmt.Errorf("route: subscribe to rule and route events: %w", err)
	}
	if err := s.SetReceiveTimeout(&unix.Timeval{Usec: 200_000}); err != nil {
		s.Close()
		return fmt.Errorf("route: %w", err)
	}
	kick := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		defer s.Close()
		done <- m.receive(ctx, s, kick)
	}()
	var timer <-chan time.Time
	var last time.Time
	gap := minRepairGap
	for {
		select {
		case <-ctx.Done():
			<-done
			return ctx.Err()
		case err := <-done:
			return err
		case <-kick:
			wait := debounce
			if d := time.Until(last.Add(gap)); d > wait {
				wait = d
			}
			timer = time.After(wait)
		case <-timer:
			timer = nil
			start := time.Now()
			m.Repair(log)
			last = time.Now()
			gap = max(minRepairGap, 10*last.Sub(start))
		}
	}
}

// receive reads events until ctx ends and kicks for those that concern a
// lease.
func (m *Manager) receive(ctx context.Context, s *nl.NetlinkSocket, kick chan<- struct{}) error {
	for ctx.Err() == nil {
		msgs, _, err := s.Receive()
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.ENOBUFS) {
				if errors.Is(err, syscall.ENOBUFS) { // events lost: look anyway
					notify(kick)
				}
				continue
			}
			return fmt.Errorf("route: receive rule and route events: %w", err)
		}
		for _, msg := range msgs {
			if m.concerns(msg.Header.Type, msg.Data) {
				notify(kick)
			}
		}
	}
	return nil
}

func notify(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// concerns reports whether a rule or route message is about a lease: a
// rule added or deleted at a leased priority, or a route deleted from a
// leased table.
func (m *Manager) concerns(typ uint16, data []byte) bool {
	var attrs []byte
	var want uint16
	switch typ {
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		if len(data) < 12 { // struct fib_rule_hdr
			return false
		}
		attrs, want = data[12:], nl.FRA_PRIORITY
	case unix.RTM_DELROUTE:
		if len(data) < unix.SizeofRtMsg {
			return false
		}
		attrs, want = data[unix.SizeofRtMsg:], unix.RTA_TABLE
	default:
		return false
	}
	v, ok := attrU32(attrs, want)
	if !ok && typ == unix.RTM_DELROUTE {
		v, ok = uint32(data[4]), true // rtm_table: tables below 256
	}
	if !ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range m.owners {
		if typ == unix.RTM_DELROUTE && st.lease.ownsTable(int(v)) {
			return true
		}
		if typ != unix.RTM_DELROUTE && st.lease.Priorities > 0 && int(v) >= st.lease.FirstPriority && int(v) < st.lease.FirstPriority+st.lease.Priorities {
			return true
		}
	}
	return false
}

// attrU32 returns the uint32 value of the netlink attribute typ in b.
func attrU32(b []byte, typ uint16) (uint32, bool) {
	attrs, err := nl.ParseRouteAttr(b)
	if err != nil {
		return 0, false
	}
	for _, a := range attrs {
		if a.Attr.Type == typ && len(a.Value) >= 4 {
			return nl.NativeEndian().Uint32(a.Value[:4]), true
		}
	}
	return 0, false
}

// Repair puts every owner's last desired state back and returns how many
// changes that took; Watch calls it on the kernel's events.
func (m *Manager) Repair(log *slog.Logger) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := 0
	owners := make([]Owner, 0, len(m.owners))
	for o := range m.owners {
		owners = append(owners, o)
	}
	slices.Sort(owners)
	for _, o := range owners {
		st := m.owners[o]
		if !st.set {
			continue
		}
		n, err := m.apply(o, st.lease, st.desired)
		if n > 0 {
			log.Warn("ip rules/routes changed outside multihome: repaired", "owner", string(o), "changes", n)
			m.repairs.WithLabelValues(string(o)).Add(float64(n))
		}
		if err != nil {
			log.Error("repairing ip rules/routes", "owner", string(o), "err", err)
		}
		total += n
	}
	return total
}
