package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/multihome/multihome/bond"
	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/mptcp"
)

func init() {
	commands["aggregate"] = command{"run the bonding aggregator: multihome aggregate --config FILE", cmdAggregate}
	completionSpec["aggregate"] = compSpec{flags: []flagSpec{{"config", "aggregator config file", "file"}}}
}

// cmdAggregate runs the server end of bonding (docs/mptcp.md).
func cmdAggregate(args []string) error {
	fs := flag.NewFlagSet("aggregate", flag.ContinueOnError)
	path := fs.String("config", "/etc/multihome/aggregate.yaml", "aggregator config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := config.LoadAggregate(*path)
	if err != nil {
		return err
	}
	key, err := f.AggregateKey()
	if err != nil {
		return err
	}
	log := newLogger(os.Stderr, f.Log)
	a := f.Aggregate
	agg := bond.NewAggregator(bond.AggregatorOptions{Key: key, MaxConns: a.MaxConns, HeaderTimeout: a.HeaderTimeout.D(),
		DialTimeout: a.DialTimeout.D(), IdleTimeout: a.IdleTimeout.D(), Window: a.ReplayWindow.D()}, log)
	if err := raiseSubflows(*a.Subflows); err != nil {
		log.Warn("MPTCP subflow limit not raised: gateways get fewer subflows", "err", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := bond.Listen(ctx, a.Listen)
	if err != nil {
		return err
	}
	if a.Metrics != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(agg.Collectors()...)
		srv := &http.Server{Addr: a.Metrics, Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics listener", "err", err)
			}
		}()
		defer srv.Close()
	}
	log.Info("aggregator listening", "listen", ln.Addr().String())
	return agg.Serve(ctx, ln)
}

// raiseSubflows makes the kernel accept at least n subflows per MPTCP
// connection (and as many announced addresses).
func raiseSubflows(n int) error {
	if n == 0 {
		return nil
	}
	c, err := mptcp.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	l, err := c.Limits()
	if err != nil {
		return err
	}
	if l.Subflows >= uint32(n) {
		return nil
	}
	l.Subflows = uint32(n)
	l.AddAddrAccepted = max(l.AddAddrAccepted, uint32(n))
	return c.SetLimits(l)
}
