package agent

// The HTTP API (DESIGN.md §3, agent/api): JSON over HTTP/1.1 on unix
// sockets (mode 0660). Bodies are size-limited and decoded strictly, and
// every error is {"message": "…"} with one sentence.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshnet/meshnet/agent/api"
)

type apiServer struct {
	servers []*http.Server
	done    chan error
}

// listenAPI listens on every -H address and serves the API in the
// background.
func (a *Agent) listenAPI() (*apiServer, error) {
	handler := a.routes()
	s := &apiServer{done: make(chan error, len(a.cfg.Hosts))}
	for _, h := range a.cfg.Hosts {
		l, err := listen(h)
		if err != nil {
			s.shutdown(context.Background())
			return nil, err
		}
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		s.servers = append(s.servers, srv)
		go func() { s.done <- srv.Serve(l) }()
	}
	return s, nil
}

func (s *apiServer) shutdown(ctx context.Context) {
	for _, srv := range s.servers {
		srv.Shutdown(ctx)
	}
	for range s.servers {
		<-s.done
	}
}

// listen opens a unix socket (replacing a stale one, mode 0660). tcp://
// needs TLS, which the agent does not serve yet.
func listen(host string) (net.Listener, error) {
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, fmt.Errorf("invalid host %q: only unix:// sockets are served (tcp:// needs TLS, not supported yet)", host)
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

func (a *Agent) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h func(*http.Request) (int, any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			status, body, err := h(r)
			if err != nil {
				a.writeError(w, r, err)
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
		nets, err := a.Networks(r.Context(), f)
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
		resp, err := a.CreateNetwork(r.Context(), req)
		return 201, resp, err
	})
	handle("POST /networks/prune", func(r *http.Request) (int, any, error) {
		resp, err := a.PruneNetworks(r.Context())
		return 200, resp, err
	})
	handle("GET /networks/{id}", func(r *http.Request) (int, any, error) {
		n, err := a.Network(r.Context(), r.PathValue("id"))
		return 200, n, err
	})
	handle("DELETE /networks/{id}", func(r *http.Request) (int, any, error) {
		return 204, nil, a.RemoveNetwork(r.Context(), r.PathValue("id"))
	})
	handle("POST /networks/{id}/connect", func(r *http.Request) (int, any, error) {
		var req api.NetworkConnect
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return 200, nil, a.Connect(r.Context(), r.PathValue("id"), req)
	})
	handle("POST /networks/{id}/disconnect", func(r *http.Request) (int, any, error) {
		var req api.NetworkDisconnect
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		return 200, nil, a.Disconnect(r.Context(), r.PathValue("id"), req)
	})
	handle("GET /sandboxes", func(r *http.Request) (int, any, error) {
		return 200, a.Sandboxes(), nil
	})
	handle("POST /sandboxes/create", func(r *http.Request) (int, any, error) {
		var req api.SandboxCreate
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		resp, err := a.CreateSandbox(r.Context(), req)
		return 201, resp, err
	})
	handle("GET /sandboxes/{id}", func(r *http.Request) (int, any, error) {
		s, err := a.Sandbox(r.PathValue("id"))
		return 200, s, err
	})
	handle("DELETE /sandboxes/{id}", func(r *http.Request) (int, any, error) {
		force := r.URL.Query().Get("force")
		return 204, nil, a.RemoveSandbox(r.Context(), r.PathValue("id"), force == "1" || force == "true")
	})
	handle("GET /nodes", func(r *http.Request) (int, any, error) {
		return 200, a.Nodes(r.Context()), nil
	})
	handle("GET /info", func(r *http.Request) (int, any, error) {
		return 200, a.Info(), nil
	})
	handle("GET /version", func(r *http.Request) (int, any, error) {
		return 200, VersionInfo(), nil
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics(), promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, api.Error{Message: fmt.Sprintf("no such API route: %s %s", r.Method, r.URL.Path)})
	})
	return mux
}

func (a *Agent) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := a.userMessage(err)
	if status >= 500 {
		a.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	} else {
		a.log.Debug("API request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", msg)
	}
	writeJSON(w, status, api.Error{Message: msg})
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
		return badRequest("request body is larger than %d bytes", api.MaxBodyBytes)
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; a JSON object is expected")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is cut short: it is not complete JSON")
	case errors.As(err, &syntaxErr):
		return badRequest("request body is not valid JSON (at byte %d)", syntaxErr.Offset)
	case errors.As(err, &typeErr):
		if typeErr.Field == "" {
			return badRequest("request body must be a JSON object")
		}
		return badRequest("field %s must be %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case errors.Is(err, errTrailing):
		return badRequest("request body has data after the JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s in request body", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return badRequest("request body cannot be read: it is not the expected JSON")
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
		return nil, badRequest("invalid filters %q: want a JSON object of string lists", s)
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
