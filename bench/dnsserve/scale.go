package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/multihome/multihome/dns"
	"github.com/multihome/multihome/monitor"
)

// writeScale writes dir/multihome.yaml, a zone with n health-steered
// names h0 ... h<n-1> (each with an address on isp1 and one on isp2),
// and dir/queries, 10,000 A queries for random ones (dnsperf format).
func writeScale(dir string, n int) error {
	f, err := os.Create(filepath.Join(dir, "multihome.yaml"))
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, `links:
  - {name: isp1, interface: wan1, gateway4: 198.51.100.1}
  - {name: isp2, interface: wan2, gateway4: 203.0.113.1}
dns:
  listen: ["127.0.0.1:5301"]
  udp_sockets: 1
  rrl: {disable: true}
  zones:
    - name: example.com
      records: ["@ NS ns1", "ns1 A 198.51.100.3"]
      names:
`)
	for i := range n {
		fmt.Fprintf(w, "        - {name: h%d, records: [{link: isp1, a: 198.51.100.%d}, {link: isp2, a: 203.0.113.%d}]}\n", i, 2+i%250, 2+i%250)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, uint64(n)))
	q, err := os.Create(filepath.Join(dir, "queries"))
	if err != nil {
		return err
	}
	w = bufio.NewWriter(q)
	for range 10_000 {
		fmt.Fprintf(w, "h%d.example.com A\n", r.IntN(n))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return q.Close()
}

// flapper toggles isp1 down and up every interval once started, and
// measures for each event the time until a query for probe (the last
// name, the last one the rebuild reaches) gets the new answer over UDP.
type flapper struct {
	src      *allUp
	srv      *dns.Server
	log      *slog.Logger
	probe    string
	every    time.Duration
	latency  []time.Duration
	rebuilds []time.Duration
}

func (f *flapper) run(ctx context.Context) {
	down := false
	t := time.NewTicker(f.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		down = !down
		st := monitor.Status{Link: "isp1", State: monitor.Up, Health: monitor.Up, Since: time.Now()}
		want := 2
		if down {
			st.State, st.Health, want = monitor.Down, monitor.Down, 1
		}
		start := time.Now()
		f.src.Publish(monitor.Event{Time: start, Kind: monitor.StateChanged, Link: "isp1", Status: st})
		for ctx.Err() == nil && f.answers() != want {
			if time.Since(start) > 10*time.Second {
				f.log.Error("answer did not follow the link event", "probe", f.probe)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
		f.latency = append(f.latency, time.Since(start))
		f.rebuilds = append(f.rebuilds, f.srv.Stats().LastRebuild)
	}
}

// answers is how many addresses the probe name has now.
func (f *flapper) answers() int {
	addrs := f.srv.Addrs()
	if len(addrs) == 0 {
		return -1
	}
	c := &mdns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(new(mdns.Msg).SetQuestion(f.probe, mdns.TypeA), netip.AddrPortFrom(addrs[0].Addr(), addrs[0].Port()).String())
	if err != nil {
		return -1
	}
	return len(r.Answer)
}

// summary is one line for bench/dns-scale.sh: the events, and the
// median and worst of the time to new answers and of the rebuilds.
func (f *flapper) summary() string {
	pct := func(d []time.Duration) (time.Duration, time.Duration) {
		if len(d) == 0 {
			return 0, 0
		}
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2], s[len(s)-1]
	}
	lm, lx := pct(f.latency)
	rm, rx := pct(f.rebuilds)
	return fmt.Sprintf("flap events %d  event-to-answer median %v max %v  rebuild median %v max %v",
		len(f.latency), lm.Round(time.Millisecond/10), lx.Round(time.Millisecond/10), rm.Round(time.Millisecond/10), rx.Round(time.Millisecond/10))
}
