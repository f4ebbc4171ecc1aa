package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// stopGrace is how long an agent has to exit after SIGTERM before it is
// killed (and Stop reports it).
const stopGrace = 30 * time.Second

// Host is one host of the cluster: a namespace on the underlay running a
// meshagent.
type Host struct {
	*nshost.Host // namespace (its Name is PREFIX-NODE) and underlay address
	// Node is the node name: n1, n2, …
	Node string
	// Dir holds the host's files: agent.yaml, agent.log, agent.sock, data/.
	Dir string
	// Socket is the agent's API address, unix://DIR/agent.sock.
	Socket string
	// LogPath is the agent's log file (stdout and stderr, appended across
	// restarts).
	LogPath string

	c *Cluster

	mu   sync.Mutex
	proc *testenv.Process // guarded by mu; nil while stopped
}

// writeConfig writes the agent's configuration file: the cluster keys a
// user puts in /etc/meshnet/agent.yaml. Host-local settings are flags
// (see args), so both sources are exercised.
func (h *Host) writeConfig(storeURL string, storeOpts []string, tokenFile string) error {
	if err := os.MkdirAll(filepath.Join(h.Dir, "data"), 0o700); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# meshagent configuration of test host %s\n", h.Node)
	fmt.Fprintf(&b, "cluster-store: %s\n", storeURL)
	if len(storeOpts) > 0 {
		b.WriteString("cluster-store-opt:\n")
		for _, o := range storeOpts {
			fmt.Fprintf(&b, "  - %s\n", o)
		}
	}
	if tokenFile != "" {
		fmt.Fprintf(&b, "cluster-token-file: %s\n", tokenFile)
	}
	fmt.Fprintf(&b, "cluster-advertise: %s:7946\n", nshost.HostDev)
	b.WriteString("log-level: debug\n")
	return os.WriteFile(h.ConfigPath(), []byte(b.String()), 0o644)
}

// ConfigPath is the agent's configuration file.
func (h *Host) ConfigPath() string { return filepath.Join(h.Dir, "agent.yaml") }

func (h *Host) args() []string {
	args := []string{"--config", h.ConfigPath(),
		"--node-name", h.Node,
		"--data-dir", filepath.Join(h.Dir, "data"),
		"-H", h.Socket,
		"--bridge", "none",
		"--docker-plugin", "", "--docker-host", ""}
	return append(args, h.c.opts.AgentArgs...)
}

// Start starts the agent inside the host's namespace and waits until it
// answers GET /info. Starting a running agent does nothing.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc != nil {
		return nil
	}
	if _, err := h.launchLocked(); err != nil {
		return err
	}
	p := h.proc
	ctx, cancel := context.WithTimeout(ctx, h.c.opts.StartTimeout)
	defer cancel()
	var last error
	for {
		if _, last = h.Info(ctx); last == nil {
			return nil
		}
		select {
		case <-p.Exited():
			h.proc = nil
			return fmt.Errorf("meshagent on %s exited with status %d while starting:\n%s",
				h.Node, p.ExitCode(), Tail(h.LogPath, 20))
		case <-ctx.Done():
			return fmt.Errorf("meshagent on %s does not answer GET /info (%v):\n%s",
				h.Node, last, Tail(h.LogPath, 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitStore waits until the agent reports its cluster store usable
// (GET /info says StoreStatus "ok"), bounded by the start timeout.
func (h *Host) WaitStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.c.opts.StartTimeout)
	defer cancel()
	for {
		info, err := h.Info(ctx)
		if err == nil && info.StoreStatus == "ok" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("store status %q", info.StoreStatus)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("meshagent on %s has no usable cluster store: %v", h.Node, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends the agent SIGTERM and waits for it to exit; it is an error
// if the agent had to be killed or exited with a non-zero status.
// Stopping a stopped agent does nothing.
func (h *Host) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.proc
	if p == nil {
		return nil
	}
	h.proc = nil
	select {
	case <-p.Exited():
		return fmt.Errorf("meshagent on %s had exited by itself with status %d", h.Node, p.ExitCode())
	default:
	}
	if !p.Stop(stopGrace) {
		return fmt.Errorf("meshagent on %s did not exit within %s of SIGTERM and was killed", h.Node, stopGrace)
	}
	if code := p.ExitCode(); code != 0 {
		return fmt.Errorf("meshagent on %s exited with status %d after SIGTERM", h.Node, code)
	}
	return nil
}

// Kill ends the agent with SIGKILL, with no chance to leave the cluster
// or save anything: a crashed agent or a host switched off.
func (h *Host) Kill() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.proc.Kill()
	h.proc = nil
}

// Restart stops the agent and starts it again.
func (h *Host) Restart(ctx context.Context) error {
	return errors.Join(h.Stop(), h.Start(ctx))
}

// PID is the agent's process id, 0 while stopped.
func (h *Host) PID() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil {
		return 0
	}
	return h.proc.PID()
}

// Running reports whether the agent process is alive.
func (h *Host) Running() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.proc == nil {
		return false
	}
	select {
	case <-h.proc.Exited():
		return false
	default:
		return true
	}
}

// Result is what a run of agentctl printed and its exit status (-1 if it
// could not run or was killed).
type Result struct {
	Stdout, Stderr string
	Code           int
}

// String renders the result for a test message.
func (r Result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// AgentCtl runs agentctl -H SOCKET ARGS… against the host's agent, as a
// user on the host would, giving it two minutes at most.
func (h *Host) AgentCtl(args ...string) Result {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return h.AgentCtlContext(ctx, args...)
}

// AgentCtlContext is AgentCtl bounded by ctx.
func (h *Host) AgentCtlContext(ctx context.Context, args ...string) Result {
	cmd := exec.CommandContext(ctx, h.c.bins.Ctl, append([]string{"-H", h.Socket}, args...)...)
	cmd.Env = childEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		r.Code = -1
		r.Stderr += err.Error()
	}
	return r
}

// HTTPClient is an HTTP client of the agent's API socket; requests go to
// http://meshagent/PATH.
func (h *Host) HTTPClient() *http.Client {
	path := strings.TrimPrefix(h.Socket, "unix://")
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

// API sends one request to the agent's API and returns the status and
// body of the answer.
func (h *Host) API(ctx context.Context, method, path string, body io.Reader) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://meshagent"+path, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.HTTPClient().Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Info asks the agent for GET /info.
func (h *Host) Info(ctx context.Context) (api.Info, error) {
	var info api.Info
	code, b, err := h.API(ctx, http.MethodGet, "/info", nil)
	if err != nil {
		return info, err
	}
	if code != http.StatusOK {
		return info, fmt.Errorf("GET /info: status %d: %s", code, b)
	}
	return info, json.Unmarshal(b, &info)
}

// childEnv is the environment of agents and agentctl: the test's, without
// MESHNET_* variables, which would override their flags.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MESHNET_") {
			env = append(env, kv)
		}
	}
	return env
}
