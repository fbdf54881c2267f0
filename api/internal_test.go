package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/monitor"
)

func TestEventLogRing(t *testing.T) {
	l := newEventLog(3, 1)
	if got, _ := l.since(0, 0); len(got) != 0 {
		t.Fatalf("empty log: %v", got)
	}
	_, wake := l.since(0, 0)
	for i := range 5 {
		l.add(Entry{Reason: string(rune('a' + i))})
	}
	select {
	case <-wake:
	default:
		t.Error("readers not woken by add")
	}
	got, wake := l.since(0, 0)
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 || got[2].Reason != "e" {
		t.Errorf("after 5 adds to a ring of 3: %+v", got)
	}
	if got, _ := l.since(4, 0); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("since 4: %+v", got)
	}
	if got, _ := l.since(0, 2); len(got) != 2 || got[0].Seq != 4 {
		t.Errorf("limit 2: %+v", got)
	}
	for _, seq := range []uint64{5, 6, 100} {
		if got, _ := l.since(seq, 0); len(got) != 0 {
			t.Errorf("since %d (nothing newer): %+v", seq, got)
		}
	}
	if got, _ := l.since(3, 1); len(got) != 1 || got[0].Seq != 5 {
		t.Errorf("since 3 limit 1: %+v", got)
	}
	if l.last() != 5 {
		t.Errorf("last %d", l.last())
	}
	select {
	case <-wake:
		t.Error("woken without a new entry")
	default:
	}
}

func TestConfigJSON(t *testing.T) {
	cfg, err := config.Parse("t.yaml", []byte(`
links:
  - name: isp1
    interface: wan1
    gateway4: 198.51.100.1
    capacity: {down: 50Mbit, up: 10Mbit}
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := configJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v:\n%s", err, b)
	}
	for _, w := range []string{`"name": "isp1"`, `"gateway4": "198.51.100.1"`, `"down": "50Mbit"`, `"down_after": 3`, `"hold_down": "2s"`, `"level": "info"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("config JSON lacks %s:\n%s", w, b)
		}
	}
	if strings.Index(string(b), `"log"`) > strings.Index(string(b), `"links"`) {
		t.Error("config JSON does not keep the file's field order")
	}
	if b, err := configJSON(nil); err != nil || string(b) != "null\n" {
		t.Errorf("nil config: %q %v", b, err)
	}
}

func TestConfigJSONRedacts(t *testing.T) {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(`
api: {listen: "0.0.0.0:9180", token: hunter2}
dns: {tsig: {name: k, secret: c2VjcmV0}}
count: 3
ratio: 0.5
on: true
empty: null
`), &n); err != nil {
		t.Fatal(err)
	}
	out, err := nodeJSON(&n)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(strings.Fields(string(out)), "")
	for _, bad := range []string{"hunter2", "c2VjcmV0", `"name":"k"`} {
		if strings.Contains(s, bad) {
			t.Errorf("secret %s served: %s", bad, s)
		}
	}
	for _, w := range []string{`"listen":"0.0.0.0:9180"`, `"token":"<redacted>"`, `"count":3`, `"ratio":0.5`, `"on":true`, `"empty":null`} {
		if !strings.Contains(s, w) {
			t.Errorf("lacks %s: %s", w, s)
		}
	}
}

func TestOverview(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		states []monitor.State
		want   string
	}{
		{[]monitor.State{monitor.Up, monitor.Up}, "ok"},
		{[]monitor.State{monitor.Up, monitor.Down}, "degraded"},
		{[]monitor.State{monitor.Degraded}, "degraded"},
		{[]monitor.State{monitor.Down, monitor.Unknown}, "down"},
		{nil, "down"},
	} {
		var snap []monitor.Status
		for _, s := range tc.states {
			snap = append(snap, monitor.Status{State: s})
		}
		if got := overviewOf(snap, now, now).Health; got != tc.want {
			t.Errorf("%v: health %q, want %q", tc.states, got, tc.want)
		}
	}
}

// TestLinkHolds: a hold on a link reaches the API's JSON; no hold, no
// field.
func TestLinkHolds(t *testing.T) {
	b, err := json.Marshal(linkOf(monitor.Status{Link: "isp1", State: monitor.Down,
		Holds: []string{"bgp neighbor 198.51.100.1 require_default: no default route"}}))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"holds":["bgp neighbor 198.51.100.1 require_default: no default route"]`) {
		t.Errorf("link JSON without its hold: %s", b)
	}
	b, _ = json.Marshal(linkOf(monitor.Status{Link: "isp1", State: monitor.Up}))
	if strings.Contains(string(b), `"holds"`) {
		t.Errorf("link JSON with a hold field and no hold: %s", b)
	}
}
