package apiserver

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/service"
)

// slowCreate is a service whose network create runs until its context
// is cancelled, then takes a while to roll back.
type slowCreate struct {
	service.Service
	started    chan struct{}
	rolledBack atomic.Bool
}

func (s *slowCreate) Metrics() prometheus.Gatherer { return prometheus.NewRegistry() }

func (s *slowCreate) NetworkCreate(ctx context.Context, req api.NetworkCreate) (api.CreateResponse, error) {
	close(s.started)
	<-ctx.Done()
	time.Sleep(200 * time.Millisecond) // the rollback
	s.rolledBack.Store(true)
	return api.CreateResponse{}, service.Errorf(service.ErrUnavailable, "the agent is shutting down")
}

// Shutdown returns only after every handler has returned, having
// cancelled the ones still running after the grace period, so that the
// store and gossip they use can be closed afterwards.
func TestShutdownWaitsForHandlers(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "api.sock")
	svc := &slowCreate{started: make(chan struct{})}
	srv, err := Listen(svc, []string{"unix://" + sock}, slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	go client.Post("http://agent/networks/create", "application/json", strings.NewReader(`{"Name":"x"}`))
	select {
	case <-svc.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the service")
	}
	start := time.Now()
	srv.Shutdown(100 * time.Millisecond)
	if !svc.rolledBack.Load() {
		t.Fatalf("Shutdown returned after %s while a handler was still rolling back", time.Since(start))
	}
}
