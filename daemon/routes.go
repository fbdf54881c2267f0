package daemon

import (
	"context"
	"log/slog"

	"github.com/vishvananda/netns"

	"github.com/multihome/multihome/config"
	"github.com/multihome/multihome/route"
)

// routeOwner is a subsystem that writes ip rules or routes. The daemon
// gives every one the same route.Manager (before Run), so that package
// route is the only writer and one loop repairs drift for all of them.
type routeOwner interface {
	UseRoutes(m *route.Manager) error
}

// routesSub runs the shared route manager's drift repair.
type routesSub struct {
	m   *route.Manager
	log *slog.Logger
}

func (r routesSub) Run(ctx context.Context) error {
	if err := r.m.Watch(ctx, netns.None(), r.log); err != nil && ctx.Err() == nil {
		// Without events there is no drift repair, but the owners still
		// write (and outbound still verifies periodically): keep running.
		r.log.Error("drift repair of ip rules and routes is off", "err", err)
		<-ctx.Done()
	}
	return nil
}

func (routesSub) Update(*config.Config) error { return nil }
