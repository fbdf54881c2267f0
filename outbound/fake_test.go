package outbound

import (
	"sync"
	"time"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

// fakeSource is a monitor.Source driven by the test: set changes a link's
// status and publishes the event, with no detection delay.
type fakeSource struct {
	bus monitor.Bus
	mu  sync.Mutex
	st  []monitor.Status
}

func newFakeSource(cfg *config.Config, state monitor.State) *fakeSource {
	f := &fakeSource{}
	for _, l := range cfg.Links {
		f.st = append(f.st, monitor.Status{Link: l.Name, Interface: l.Interface, State: state, Health: state, Carrier: true})
	}
	return f
}

func (f *fakeSource) Subscribe() (<-chan monitor.Event, func()) { return f.bus.Subscribe() }

func (f *fakeSource) Snapshot() []monitor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]monitor.Status(nil), f.st...)
}

// set changes link's status with mod and publishes an event of kind.
func (f *fakeSource) set(link string, kind monitor.Kind, reason string, mod func(*monitor.Status)) {
	f.mu.Lock()
	var ev monitor.Event
	for i := range f.st {
		if f.st[i].Link != link {
			continue
		}
		from := f.st[i].State
		mod(&f.st[i])
		f.st[i].Since = time.Now()
		ev = monitor.Event{Time: time.Now(), Kind: kind, Link: link, From: from, To: f.st[i].State, Reason: reason, Status: f.st[i]}
	}
	f.mu.Unlock()
	f.bus.Publish(ev)
}

func (f *fakeSource) down(link string) {
	f.set(link, monitor.StateChanged, "test: link down", func(s *monitor.Status) { s.State, s.Health = monitor.Down, monitor.Down })
}

func (f *fakeSource) up(link string) {
	f.set(link, monitor.StateChanged, "test: link up", func(s *monitor.Status) {
		s.State, s.Health, s.HoldDown = monitor.Up, monitor.Up, false
	})
}

func (f *fakeSource) holdDown(link string) {
	f.set(link, monitor.HoldDownStarted, "test: recovered, hold-down", func(s *monitor.Status) {
		s.Health, s.HoldDown = monitor.Up, true
	})
}

func (f *fakeSource) saturate(link string, on bool) {
	f.set(link, monitor.SaturationChanged, "test: saturation", func(s *monitor.Status) {
		s.Saturated = on
		s.UtilUp = map[bool]float64{true: 0.97, false: 0.1}[on]
	})
}
