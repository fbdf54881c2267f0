package monitor

import (
	"testing"
	"time"
)

// TestInterfaceChanges: a receiver is woken once at first, wake-ups
// coalesce into one pending, every receiver gets its own, and cancel
// stops them.
func TestInterfaceChanges(t *testing.T) {
	m := &Monitor{}
	a, cancelA := m.InterfaceChanges()
	b, cancelB := m.InterfaceChanges()
	defer cancelB()
	pending := func(ch <-chan struct{}) int {
		n := 0
		for {
			select {
			case <-ch:
				n++
			case <-time.After(20 * time.Millisecond):
				return n
			}
		}
	}
	if n := pending(a); n != 1 {
		t.Errorf("at first: %d wake-ups, want 1", n)
	}
	m.ifChanges.signal()
	m.ifChanges.signal()
	m.ifChanges.signal()
	if n := pending(a); n != 1 {
		t.Errorf("three changes: %d wake-ups pending, want 1", n)
	}
	if n := pending(b); n != 1 {
		t.Errorf("second receiver: %d wake-ups (first and three changes), want 1", n)
	}
	cancelA()
	m.ifChanges.signal()
	if n := pending(a); n != 0 {
		t.Errorf("after cancel: %d wake-ups, want 0", n)
	}
	if n := pending(b); n != 1 {
		t.Errorf("the other receiver after one's cancel: %d wake-ups, want 1", n)
	}
}
