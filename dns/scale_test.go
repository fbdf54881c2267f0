package dns

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multihome/multihome/monitor"
)

// scaleYAML is a zone with n health-steered names on two links.
func scaleYAML(n int) string {
	var b strings.Builder
	b.WriteString(baseLinks + `
dns:
  listen: ["127.0.0.1:53"]
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
`)
	for i := range n {
		fmt.Fprintf(&b, "        - {name: h%d, records: [{link: isp1, a: 198.51.100.%d}, {link: isp2, a: 203.0.113.%d}]}\n", i, 2+i%200, 2+i%200)
	}
	return b.String()
}

// BenchmarkRebuild is the time from a link event to the new view being
// served, with 100, 10K and 100K steered names (bench/dns-scale.sh
// measures the same with queries on the wire).
func BenchmarkRebuild(b *testing.B) {
	for _, n := range []int{100, 10_000, 100_000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) {
			src := newFakeSource("isp1", "isp2")
			s, err := New(parseConfig(b, scaleYAML(n)), src, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, st := range src.Snapshot() {
				s.applyStatus(st, s.now(), true)
			}
			s.rebuild()
			state := monitor.Down
			b.ReportAllocs()
			for b.Loop() {
				s.applyEvent(monitor.Event{Time: time.Now(), Link: "isp1", Status: monitor.Status{Link: "isp1", State: state, Health: state}})
				s.rebuild()
				if state == monitor.Down {
					state = monitor.Up
				} else {
					state = monitor.Down
				}
			}
		})
	}
}
