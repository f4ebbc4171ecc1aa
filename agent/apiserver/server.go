// Package apiserver serves meshagent's HTTP API (docs/design.md, agent/api)
// over a service.Service: JSON over HTTP/1.1 on unix sockets (mode 0660).
// Bodies are size-limited and decoded strictly, and every error is
// {"message": "…"} with one sentence and the status its kind says.
//
// The server owns its request handlers: Shutdown stops accepting, lets the
// handlers in flight finish (for a while), then cancels their contexts so
// that a half-done operation rolls back, and returns only when every
// handler has returned, so the caller may close what they use afterwards.
package apiserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// CNI is the agent's side of the CNI plugin (agent/cniserver), served
// under /cni/.
type CNI interface {
	Add(ctx context.Context, req api.CNIAdd) (api.CNIResult, error)
	Check(ctx context.Context, req api.CNICheck) (api.CNIResult, error)
	Del(ctx context.Context, req api.CNIDel) error
	GC(ctx context.Context, req api.CNIGC) (api.CNIGCResult, error)
	Status(ctx context.Context, network string) error
}

// Options are what the server serves besides the service.
type Options struct {
	// CNI, when set, is served under /cni/.
	CNI CNI
	// TLS is the mutual TLS of tcp:// addresses; without it they are
	// refused.
	TLS *tls.Config
	// Cluster, when set, is served under /cluster/.
	Cluster service.Cluster
	// Debug serves Go's profiles under /debug/pprof/ (the agent's
	// log-level debug), as Docker's daemon does in debug mode.
	Debug bool
}

// Server serves the API on one or more listeners.
type Server struct {
	svc     service.Service
	opts    Options
	log     *slog.Logger
	servers []*http.Server
	done    chan error

	// ops is the context of every request; cancelled by Shutdown once
	// the grace period is over.
	ops    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closing  bool           // guarded by mu: Shutdown has begun; no handler starts
	handlers sync.WaitGroup // requests being handled; Add under mu while !closing
}

// enter registers a handler about to run; false once Shutdown has begun.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.handlers.Add(1)
	return true
}

// Listen listens on every address (unix:///PATH) and serves svc in the
// background.
func Listen(svc service.Service, hosts []string, log *slog.Logger, opts Options) (*Server, error) {
	s := &Server{svc: svc, opts: opts, log: log, done: make(chan error, len(hosts))}
	s.ops, s.cancel = context.WithCancel(context.Background())
	handler := s.routes()
	for _, h := range hosts {
		l, err := listen(h, opts.TLS)
		if err != nil {
			s.Shutdown(time.Second)
			return nil, err
		}
		// An idle keep-alive connection costs two buffers and a goroutine:
		// clients that never close theirs must not add up; nor may one
		// that sends its request, or reads the answer, a byte at a time
		// (operations end within the controller's 30 s bound).
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: 2 * time.Minute, IdleTimeout: 30 * time.Second,
			BaseContext: func(net.Listener) context.Context { return s.ops }}
		s.servers = append(s.servers, srv)
		go func() { s.done <- srv.Serve(l) }()
	}
	return s, nil
}

// Shutdown stops accepting requests, waits up to grace for the ones in
// flight, then cancels them and waits until every handler has returned.
func (s *Server) Shutdown(grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Shutdown(ctx) // returns at the deadline with requests still running
	}
	s.cancel()
	for _, srv := range s.servers {
		srv.Close()
	}
	for range s.servers {
		<-s.done
	}
	s.handlers.Wait()
}

// listen opens a unix socket (replacing a stale one, mode 0660), or a
// tcp:// address with mutual TLS.
func listen(host string, tlsCfg *tls.Config) (net.Listener, error) {
	if hp, ok := strings.CutPrefix(host, "tcp://"); ok {
		if tlsCfg == nil || tlsCfg.ClientAuth != tls.RequireAndVerifyClientCert {
			return nil, fmt.Errorf("invalid host %q: tcp:// is served only with mutual TLS (tlsverify)", host)
		}
		l, err := net.Listen("tcp", hp)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", host, err)
		}
		return tls.NewListener(l, tlsCfg), nil
	}
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, fmt.Errorf("invalid host %q: expected unix:///PATH or tcp://HOST:PORT", host)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the socket's directory: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("another meshagent is already serving %s", host)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", host, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return l, nil
}

// routes maps every API route to the service.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	svc := s.svc
	handle := func(pattern string, h func(*http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if !s.enter() {
				writeJSON(w, http.StatusServiceUnavailable, api.Error{Message: "meshagent is shutting down"})
				return
			}
			defer s.handlers.Done()
			status, body, err := h(r)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			writeJSON(w, status, body)
		})
	}
	handle("GET /networks", func(r *http.Request) (int, any, error) {
		f, err := parseFilters(r.URL.Query().Get("filters"))
		if err != nil {
			return 0, nil, err
		}
		nets, err := svc.NetworkList(r.Context(), f)
		if nets == nil {
			nets = []api.Network{}
		}
		return 200, nets, err
	})
	handle("POST /networks/create", func(r *http.Request) (int, any, error) {
		var req api.NetworkCreate
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		resp, err := svc.NetworkCreate(r.Context(), req)
		return 201, resp, err
	})
	handle("POST /networks/prune", func(r *http.Request) (int, any, error) {
		resp, err := svc.NetworkPrune(r.Context())
		return 200, resp, err
	})
	handle("GET /networks/{id}", func(r *http.Request) (int, any, error) {
		n, err := svc.NetworkInspect(r.Context(), r.PathValue("id"))
		return 200, n, err
	})
	handle("DELETE /networks/{id}", func(r *http.Request) (int, any, error) {
		return 204, nil, svc.NetworkRemove(r.Context(), r.PathValue("id"))
	})
	handle("POST /networks/{id}/connect", func(r *http.Request) (int, any, error) {
		var req api.NetworkConnect
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return 200, nil, svc.NetworkConnect(r.Context(), r.PathValue("id"), req)
	})
	handle("POST /networks/{id}/disconnect", func(r *http.Request) (int, any, error) {
		var req api.NetworkDisconnect
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return 200, nil, svc.NetworkDisconnect(r.Context(), r.PathValue("id"), req)
	})
	handle("POST /endpoints/create", func(r *http.Request) (int, any, error) {
		var req api.EndpointCreate
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		ep, err := svc.EndpointCreate(r.Context(), req)
		return 201, ep, err
	})
	handle("GET /endpoints/{id}", func(r *http.Request) (int, any, error) {
		ep, err := svc.EndpointInspect(r.Context(), r.PathValue("id"))
		return 200, ep, err
	})
	handle("POST /endpoints/{id}/join", func(r *http.Request) (int, any, error) {
		var req api.EndpointJoin
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		ep, err := svc.EndpointJoin(r.Context(), r.PathValue("id"), req)
		return 200, ep, err
	})
	handle("POST /endpoints/{id}/leave", func(r *http.Request) (int, any, error) {
		return 204, nil, svc.EndpointLeave(r.Context(), r.PathValue("id"))
	})
	handle("POST /endpoints/{id}/update", func(r *http.Request) (int, any, error) {
		var req api.EndpointUpdate
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		ep, err := svc.EndpointUpdate(r.Context(), r.PathValue("id"), req)
		return 200, ep, err
	})
	handle("DELETE /endpoints/{id}", func(r *http.Request) (int, any, error) {
		return 204, nil, svc.EndpointDelete(r.Context(), r.PathValue("id"))
	})
	handle("POST /endpoints/{id}/check", func(r *http.Request) (int, any, error) {
		var req api.EndpointCheck
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return 204, nil, svc.EndpointCheck(r.Context(), r.PathValue("id"), req)
	})
	if cni := s.opts.CNI; cni != nil {
		handle("POST /cni/add", func(r *http.Request) (int, any, error) {
			var req api.CNIAdd
			if err := decode(r, &req); err != nil {
				return 0, nil, err
			}
			res, err := cni.Add(r.Context(), req)
			return 201, res, err
		})
		handle("POST /cni/check", func(r *http.Request) (int, any, error) {
			var req api.CNICheck
			if err := decode(r, &req); err != nil {
				return 0, nil, err
			}
			res, err := cni.Check(r.Context(), req)
			return 200, res, err
		})
		handle("POST /cni/del", func(r *http.Request) (int, any, error) {
			var req api.CNIDel
			if err := decode(r, &req); err != nil {
				return 0, nil, err
			}
			return 204, nil, cni.Del(r.Context(), req)
		})
		handle("POST /cni/gc", func(r *http.Request) (int, any, error) {
			var req api.CNIGC
			if err := decode(r, &req); err != nil {
				return 0, nil, err
			}
			res, err := cni.GC(r.Context(), req)
			if res.Released == nil {
				res.Released = []api.CNIAttachment{}
			}
			return 200, res, err
		})
		handle("GET /cni/status", func(r *http.Request) (int, any, error) {
			return 204, nil, cni.Status(r.Context(), r.URL.Query().Get("network"))
		})
	}
	handle("GET /sandboxes", func(r *http.Request) (int, any, error) {
		f, err := parseFilters(r.URL.Query().Get("filters"))
		if err != nil {
			return 0, nil, err
		}
		sbs, err := svc.SandboxList(r.Context(), f)
		if sbs == nil {
			sbs = []api.Sandbox{}
		}
		return 200, sbs, err
	})
	handle("POST /sandboxes/create", func(r *http.Request) (int, any, error) {
		var req api.SandboxCreate
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		resp, err := svc.SandboxCreate(r.Context(), req)
		return 201, resp, err
	})
	handle("POST /sandboxes/{id}/publish", func(r *http.Request) (int, any, error) {
		var req api.SandboxPublish
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		sb, err := svc.SandboxPublish(r.Context(), r.PathValue("id"), req.Publish)
		return 200, sb, err
	})
	handle("GET /sandboxes/{id}", func(r *http.Request) (int, any, error) {
		sb, err := svc.SandboxInspect(r.Context(), r.PathValue("id"))
		return 200, sb, err
	})
	handle("DELETE /sandboxes/{id}", func(r *http.Request) (int, any, error) {
		force := r.URL.Query().Get("force")
		return 204, nil, svc.SandboxRemove(r.Context(), r.PathValue("id"), force == "1" || force == "true")
	})
	handle("GET /nodes", func(r *http.Request) (int, any, error) {
		nodes, err := svc.Nodes(r.Context())
		return 200, nodes, err
	})
	handle("GET /info", func(r *http.Request) (int, any, error) {
		info, err := svc.Info(r.Context())
		return 200, info, err
	})
	handle("GET /version", func(r *http.Request) (int, any, error) {
		return 200, svc.Version(), nil
	})
	if c := s.opts.Cluster; c != nil {
		clusterRoutes(c, handle)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(svc.Metrics(), promhttp.HandlerOpts{}))
	if s.opts.Debug {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no such API route: %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

// StatusOf is the HTTP status of an error from the service: its kind's,
// or 500 for anything else.
func StatusOf(err error) int {
	switch {
	case errors.Is(err, service.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, service.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, service.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, service.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, service.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	if status >= 500 {
		s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		s.log.Debug("API request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, api.Error{Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	if status == http.StatusNoContent || body == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// decode reads a JSON body strictly: at most api.MaxBodyBytes, no unknown
// fields, nothing after the value. Its errors are sentences, not decoder
// internals.
func decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, api.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, err2 := dec.Token(); err2 != io.EOF {
			err = errTrailing
		}
	}
	return decodeError(err)
}

var errTrailing = errors.New("trailing data")

func decodeError(err error) error {
	var (
		maxErr    *http.MaxBytesError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &maxErr):
		return service.Invalidf("request body is larger than %d bytes", api.MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return service.Invalidf("request body is empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return service.Invalidf("request body is cut short: it is not complete JSON")
	case errors.As(err, &syntaxErr):
		return service.Invalidf("request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return service.Invalidf("request body must be a JSON object")
		}
		return service.Invalidf("field %s must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.Is(err, errTrailing):
		return service.Invalidf("request body has data after the JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return service.Invalidf("unknown field %s in request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return service.Invalidf("request body cannot be read: it is not the expected JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "a list"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a number"
}

// parseFilters reads Docker's filters parameter: {"key": ["v", …]} (or
// the older {"key": {"v": true}}).
func parseFilters(s string) (map[string][]string, error) {
	if s == "" {
		return nil, nil
	}
	var lists map[string][]string
	if err := json.Unmarshal([]byte(s), &lists); err == nil {
		return lists, nil
	}
	var sets map[string]map[string]bool
	if err := json.Unmarshal([]byte(s), &sets); err != nil {
		return nil, service.Invalidf("invalid filters %q: want a JSON object of string lists", s)
	}
	out := map[string][]string{}
	for k, set := range sets {
		for v, on := range set {
			if on {
				out[k] = append(out[k], v)
			}
		}
	}
	return out, nil
}
