package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/multihome/multihome/ha"
	"github.com/multihome/multihome/mptcp"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client talks to a multihome API server.
type Client struct {
	base  string // "http://host:port", no trailing slash
	token string
	hc    *http.Client
	// Skipped, when set, is called by Stream with the number of entries
	// the server says this stream lost: it fell the whole decision log
	// behind, or resumed after entries the log no longer holds.
	Skipped func(n uint64)
}

// NewClient returns a client of the server at addr: "unix:/path.sock",
// "host:port" or an http(s):// URL. token may be empty.
func NewClient(addr, token string) (*Client, error) {
	c := &Client{token: token}
	switch {
	case strings.HasPrefix(addr, "unix:"):
		path := strings.TrimPrefix(addr, "unix:")
		if path == "" {
			return nil, fmt.Errorf("api address %q: empty socket path", addr)
		}
		var d net.Dialer
		c.base = "http://multihome"
		c.hc = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", path)
			},
		}}
	case strings.HasPrefix(addr, "http://"), strings.HasPrefix(addr, "https://"):
		u, err := url.Parse(addr)
		if err != nil {
			return nil, fmt.Errorf("api address: %w", err)
		}
		c.base = strings.TrimSuffix(u.String(), "/")
		c.hc = &http.Client{}
	default:
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("api address %q: want unix:/path, host:port or a URL", addr)
		}
		c.base = "http://" + addr
		c.hc = &http.Client{}
	}
	return c, nil
}

// APIError is an error answer of the server.
type APIError struct {
	Code   int
	Msg    string
	Errors []string
}

func (e *APIError) Error() string {
	if len(e.Errors) > 0 {
		return e.Msg + ":\n  " + strings.Join(e.Errors, "\n  ")
	}
	return e.Msg
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.request(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw, err = io.ReadAll(resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// request sends one request and returns the response if its status is
// 2xx; any other status becomes an *APIError.
func (c *Client) request(ctx context.Context, method, path string, body any, accept string) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var e Error
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = strings.TrimSpace(string(b))
		if e.Error == "" {
			e.Error = resp.Status
		}
	}
	return nil, &APIError{Code: resp.StatusCode, Msg: e.Error, Errors: e.Errors}
}

// Status returns the overview.
func (c *Client) Status(ctx context.Context) (Overview, error) {
	var o Overview
	return o, c.do(ctx, "GET", "/api/v1/status", nil, &o)
}

// IPv6 returns the IPv6 LAN prefixes view; an *APIError with Code 404
// when the daemon has no ipv6 section.
func (c *Client) IPv6(ctx context.Context) (IPv6Status, error) {
	var s IPv6Status
	return s, c.do(ctx, "GET", "/api/v1/ipv6", nil, &s)
}

// MPTCP returns the MPTCP endpoints; an *APIError with Code 404 when the
// daemon has no mptcp section.
func (c *Client) MPTCP(ctx context.Context) (mptcp.Status, error) {
	var s mptcp.Status
	return s, c.do(ctx, "GET", "/api/v1/mptcp", nil, &s)
}

// HA returns this node's view of the HA pair; an *APIError with Code 404
// when the daemon has no ha section.
func (c *Client) HA(ctx context.Context) (ha.Status, error) {
	var s ha.Status
	return s, c.do(ctx, "GET", "/api/v1/ha", nil, &s)
}

// BGP returns the BGP speaker's neighbours; an *APIError with Code 404
// when the daemon has no bgp section.
func (c *Client) BGP(ctx context.Context) (BGPList, error) {
	var l BGPList
	return l, c.do(ctx, "GET", "/api/v1/bgp", nil, &l)
}

// Links returns every link's status.
func (c *Client) Links(ctx context.Context) ([]Link, error) {
	var l LinkList
	return l.Links, c.do(ctx, "GET", "/api/v1/links", nil, &l)
}

// Link returns one link's status.
func (c *Client) Link(ctx context.Context, name string) (Link, error) {
	var l Link
	return l, c.do(ctx, "GET", "/api/v1/links/"+url.PathEscape(name), nil, &l)
}

// Action applies action (down, drain or up) to a link and returns its
// status afterwards.
func (c *Client) Action(ctx context.Context, name, action, reason string) (Link, error) {
	var l Link
	return l, c.do(ctx, "POST", "/api/v1/links/"+url.PathEscape(name)+"/"+url.PathEscape(action), ActionRequest{Reason: reason}, &l)
}

// Events returns the last limit entries of the decision log (0: the
// server's default), only link's if link is not empty.
func (c *Client) Events(ctx context.Context, limit int, link string) (EventList, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if link != "" {
		q.Set("link", link)
	}
	var l EventList
	path := "/api/v1/events"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return l, c.do(ctx, "GET", path, nil, &l)
}

// Config returns the config in force as JSON.
func (c *Client) Config(ctx context.Context) (json.RawMessage, error) {
	var raw json.RawMessage
	return raw, c.do(ctx, "GET", "/api/v1/config", nil, &raw)
}

// Reload asks the daemon to re-read its config file.
func (c *Client) Reload(ctx context.Context) (ReloadResult, error) {
	var r ReloadResult
	return r, c.do(ctx, "POST", "/api/v1/reload", nil, &r)
}

// Stream calls fn for every decision log entry after seq since (0: every
// entry the server still has), then for every new one as it happens,
// until ctx is done, fn fails or the connection drops. It reconnects by
// itself when retry is true, resuming after the last entry received.
func (c *Client) Stream(ctx context.Context, since uint64, link string, retry bool, fn func(Entry) error) error {
	for {
		err := c.stream(ctx, &since, link, fn)
		var fe fnError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &fe):
			return fe.err
		case !retry:
			return err
		}
		var ae *APIError
		if errors.As(err, &ae) && ae.Code/100 == 4 {
			return err // asking again will not help
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

type fnError struct{ err error }

func (e fnError) Error() string { return e.err.Error() }

func (c *Client) stream(ctx context.Context, since *uint64, link string, fn func(Entry) error) error {
	q := url.Values{"since": {strconv.FormatUint(*since, 10)}}
	if link != "" {
		q.Set("link", link)
	}
	resp, err := c.request(ctx, "GET", "/api/v1/events/stream?"+q.Encode(), nil, "text/event-stream")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				continue
			}
			var e Entry
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("event stream: %w", err)
			}
			data = data[:0]
			*since = e.Seq
			if err := fn(e); err != nil {
				return fnError{err}
			}
		case bytes.HasPrefix(line, []byte(": skipped ")):
			var n uint64
			if _, err := fmt.Sscanf(string(line), ": skipped %d entries", &n); err == nil && c.Skipped != nil {
				c.Skipped(n)
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("event stream: %w", err)
	}
	return errors.New("event stream: the server closed it")
}
