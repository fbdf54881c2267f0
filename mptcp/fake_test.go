package mptcp

import (
	"fmt"
	"maps"
	"slices"
	"syscall"
)

// fakeKernel is an in-memory path manager that refuses what the kernel
// refuses (a second endpoint on one address or ID, an unknown ID) and
// counts calls.
type fakeKernel struct {
	eps    map[uint8]Endpoint
	limits Limits
	calls  int
}

func newFake(eps ...Endpoint) *fakeKernel {
	f := &fakeKernel{eps: map[uint8]Endpoint{}}
	for _, ep := range eps {
		f.eps[ep.ID] = ep
	}
	return f
}

func (f *fakeKernel) Endpoints() ([]Endpoint, error) {
	var out []Endpoint
	for _, id := range slices.Sorted(maps.Keys(f.eps)) {
		out = append(out, f.eps[id])
	}
	return out, nil
}

func (f *fakeKernel) Add(ep Endpoint) error {
	f.calls++
	if _, ok := f.eps[ep.ID]; ok {
		return fmt.Errorf("add %d: %w", ep.ID, syscall.EEXIST)
	}
	for _, o := range f.eps {
		if o.Addr == ep.Addr {
			return fmt.Errorf("add %s: %w", ep.Addr, syscall.EEXIST)
		}
	}
	f.eps[ep.ID] = ep
	return nil
}

func (f *fakeKernel) Del(id uint8) error {
	f.calls++
	if _, ok := f.eps[id]; !ok {
		return fmt.Errorf("del %d: %w", id, syscall.EINVAL)
	}
	delete(f.eps, id)
	return nil
}

func (f *fakeKernel) SetFlags(id uint8, fl Flags) error {
	f.calls++
	ep, ok := f.eps[id]
	if !ok {
		return fmt.Errorf("set flags %d: %w", id, syscall.EINVAL)
	}
	ep.Flags = ep.Flags&^Backup | fl&Backup
	f.eps[id] = ep
	return nil
}

func (f *fakeKernel) Limits() (Limits, error) { return f.limits, nil }

func (f *fakeKernel) SetLimits(l Limits) error {
	f.calls++
	f.limits = l
	return nil
}

// show renders the table as `ip mptcp endpoint show` and `ip mptcp limits`.
func show(k Kernel) string {
	eps, err := k.Endpoints()
	if err != nil {
		return err.Error()
	}
	l, err := k.Limits()
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("limits subflows %d add_addr_accepted %d\n", l.Subflows, l.AddAddrAccepted)
	for _, ep := range eps {
		s += fmt.Sprintf("%s id %d %s%s\n", ep.Addr, ep.ID, ep.Flags, dev(ep))
	}
	return s
}
