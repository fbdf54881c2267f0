package config

import (
	"net"
	"net/netip"
	"strings"
)

// API configures the HTTP API, metrics endpoint and dashboard.
type API struct {
	// Listen is "unix:/path.sock", a TCP "host:port", or "off"
	// (default unix:/run/multihome/api.sock).
	Listen string `yaml:"listen"`
	// Token, or TokenFile holding it, is required as a bearer token on
	// every API and metrics request; mandatory when Listen is a TCP
	// address that is not loopback.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// History is how many events the decision log keeps (default 1000).
	History int `yaml:"history"`
}

// DefaultAPIListen is where the API listens unless told otherwise.
const DefaultAPIListen = "unix:/run/multihome/api.sock"

func init() { sectionChecks = append(sectionChecks, checkAPI) }

func checkAPI(c *Config, k *checker) {
	a := &c.API
	if a.Listen == "" {
		a.Listen = DefaultAPIListen
	}
	if a.History == 0 {
		a.History = 1000
	} else if a.History < 0 {
		k.errorf("api.history", "must be positive, got %d", a.History)
	}
	if a.Token != "" && a.TokenFile != "" {
		k.errorf("api.token_file", "give token or token_file, not both")
	}
	switch {
	case a.Listen == "off":
	case strings.HasPrefix(a.Listen, "unix:"):
		if !strings.HasPrefix(strings.TrimPrefix(a.Listen, "unix:"), "/") {
			k.errorf("api.listen", "%q: the socket path must be absolute", a.Listen)
		}
	default:
		host, _, err := net.SplitHostPort(a.Listen)
		if err != nil {
			k.errorf("api.listen", "%q: want unix:/path, host:port or off", a.Listen)
			return
		}
		ip, err := netip.ParseAddr(host)
		loopback := host == "localhost" || err == nil && ip.IsLoopback()
		if !loopback && a.Token == "" && a.TokenFile == "" {
			k.errorf("api.listen", "%q is reachable from the network: set api.token or api.token_file", a.Listen)
		}
	}
}
