// Package client is a Go client of meshagent's HTTP API (agent/api): JSON
// over HTTP/1.1 on the agent's unix socket, or on tcp://HOST:PORT.
//
// Every method takes a context, which bounds the whole call (dial, request
// and response); the client sets no timeout of its own. Errors are meant to
// be shown to users as they are: the server's message for a refused
// request (*Error), "cannot reach meshagent at HOST: is it running?" when
// nothing answers (errors.Is(err, ErrUnreachable)), and one short sentence
// for a malformed answer, never a JSON decoder's text.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// DefaultHost is the agent's API address unless told otherwise.
const DefaultHost = "unix:///run/meshnet/agent.sock"

// maxResponseBytes bounds how much of a response the client reads.
const maxResponseBytes = 64 << 20

// Client talks to one meshagent. It is safe for concurrent use.
type Client struct {
	host string // as the user gave it, for messages
	base string // URL prefix of every request
	http *http.Client
}

// New returns a client of the agent at host: "unix:///PATH" or
// "tcp://HOST:PORT"; "" means DefaultHost. It does not connect.
func New(host string) (*Client, error) { return NewTLS(host, nil) }

// NewTLS is New with TLS on tcp:// (the agent serves tcp:// with mutual
// TLS only: tlsCfg holds the client's certificate and the agent's CA).
func NewTLS(host string, tlsCfg *tls.Config) (*Client, error) {
	if host == "" {
		host = DefaultHost
	}
	transport := &http.Transport{MaxIdleConns: 4}
	var base string
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		if path == "" || !filepath.IsAbs(path) {
			return nil, badHost(host)
		}
		dialer := &net.Dialer{}
		transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		// The host part is only what the Host header says.
		base = "http://meshagent"
	case strings.HasPrefix(host, "tcp://"):
		hostPort := strings.TrimSuffix(strings.TrimPrefix(host, "tcp://"), "/")
		h, port, err := net.SplitHostPort(hostPort)
		if err != nil || h == "" {
			return nil, badHost(host)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, badHost(host)
		}
		base = "http://" + hostPort
		if tlsCfg != nil {
			transport.TLSClientConfig = tlsCfg
			base = "https://" + hostPort
		}
	default:
		return nil, badHost(host)
	}
	return &Client{
		host: host,
		base: base,
		http: &http.Client{
			Transport: transport,
			// The API never redirects; a redirect means we are not
			// talking to the API, so show it rather than follow it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func badHost(host string) error {
	return fmt.Errorf("invalid host %q: expected unix:///PATH or tcp://HOST:PORT", host)
}

// Host returns the agent's address as given to New.
func (c *Client) Host() string { return c.host }

// Close releases idle connections. The client stays usable.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// do sends one request: in, when not nil, as the JSON body; the answer,
// when out is not nil, decoded into out.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("building request %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")

	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return c.transportError(ctx, err)
	}
	if len(data) > maxResponseBytes {
		return malformed(method, path, "too large")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return malformed(method, path, "not the expected JSON")
	}
	return nil
}

// transportError turns a failed round trip into one sentence.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("timed out waiting for meshagent at %s: %w", c.host, ctxErr)
		}
		return fmt.Errorf("request to meshagent at %s canceled: %w", c.host, ctxErr)
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		if errors.Is(err, fs.ErrPermission) {
			return &reachError{
				msg:   fmt.Sprintf("permission denied while trying to connect to meshagent at %s", c.host),
				cause: err,
			}
		}
		return &reachError{
			msg:   fmt.Sprintf("cannot reach meshagent at %s: is it running?", c.host),
			cause: err,
		}
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}
	return fmt.Errorf("talking to meshagent at %s: %w", c.host, err)
}

// objectPath returns collection/ID-OR-NAME[/action], the name escaped as
// one path segment; an empty name is refused here, since it would name the
// collection instead.
func objectPath(collection, kind, idOrName, action string) (string, error) {
	if idOrName == "" {
		return "", fmt.Errorf("empty %s name or ID", kind)
	}
	p := collection + "/" + url.PathEscape(idOrName)
	if action != "" {
		p += "/" + action
	}
	return p, nil
}
