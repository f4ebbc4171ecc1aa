package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshnet/meshnet/agent/dockerplugin"
	"github.com/meshnet/meshnet/datapath"
	"github.com/meshnet/meshnet/resolver"
)

// serveDocker serves Docker's plugin protocol on the docker-plugin socket
// and keeps the docker-host dockerd's meshnet networks in step; the
// returned function stops both. Nothing is served when docker-plugin is
// empty.
func (a *Agent) serveDocker(kernel *datapath.Datapath, dns *resolver.Server) (stop func(), err error) {
	if a.cfg.DockerPlugin == "" || !a.cfg.DockerDNS.IsValid() {
		if err := kernel.EnsureDNSAddress(netip.Addr{}); err != nil {
			a.log.Warn("removing the address of docker-dns", "err", err)
		}
	}
	if a.cfg.DockerPlugin == "" {
		return func() {}, nil
	}
	if a.cfg.DockerDNS.IsValid() {
		if err := a.serveDockerDNS(kernel, dns); err != nil {
			// Names across hosts are missed; the networks still work.
			a.log.Error("not answering DNS for Docker's containers", "docker-dns", a.cfg.DockerDNS, "err", err)
		}
	}
	var docker dockerplugin.Docker
	if a.cfg.DockerHost != "" {
		if docker, err = dockerplugin.NewDocker(a.cfg.DockerHost); err != nil {
			return nil, err
		}
	}
	plugin, err := dockerplugin.New(a.ctl, dockerplugin.Options{Docker: docker,
		StateFile: filepath.Join(a.cfg.DataDir, "docker-plugin.json"), Log: a.log.With("component", "docker-plugin")})
	if err != nil {
		return nil, err
	}
	l, err := listenUnix(a.cfg.DockerPlugin)
	if err != nil {
		return nil, fmt.Errorf("docker-plugin: %w", err)
	}
	srv := &http.Server{Handler: plugin.Handler(), ReadHeaderTimeout: 10 * time.Second}
	a.goRun(func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("serving the Docker plugin", "err", err)
		}
	})
	plugin.Start()
	a.log.Info("serving Docker's network and IPAM plugin meshnet", "socket", a.cfg.DockerPlugin, "docker-host", a.cfg.DockerHost)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		_ = srv.Shutdown(ctx)
		plugin.Close()
		os.Remove(a.cfg.DockerPlugin)
	}, nil
}

// listenUnix listens on a unix socket at path (mode 0660), replacing a
// stale socket file but not one that another process answers on.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is served by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// serveDockerDNS answers DNS on docker-dns, an address the agent puts on
// the loopback device (label lo:meshnet): Docker's resolver forwards there what it does not know
// (the daemon's dns setting), from the container's namespace, so the
// question comes from the container's address, which tells its sandbox
// and the names it sees. Only the host's own containers are answered
// (their address is a local endpoint's, or routed through a bridge): the
// address is not a resolver for the underlay.
func (a *Agent) serveDockerDNS(kernel *datapath.Datapath, dns *resolver.Server) error {
	if err := kernel.EnsureDNSAddress(a.cfg.DockerDNS); err != nil {
		return err
	}
	var mu sync.Mutex
	type verdict struct {
		ok   bool
		when time.Time
	}
	bridged := map[netip.Addr]verdict{}
	who := func(client netip.Addr) (string, bool) {
		if sb, ok := a.dp.SandboxByAddr(client); ok {
			return sb, true
		}
		mu.Lock()
		defer mu.Unlock()
		v, ok := bridged[client]
		if !ok || time.Since(v.when) > 10*time.Second {
			if len(bridged) > 4096 {
				clear(bridged)
			}
			v = verdict{ok: kernel.ViaBridge(client), when: time.Now()}
			bridged[client] = v
		}
		return "", v.ok
	}
	return dns.ServeAddress(a.cfg.DockerDNS, who)
}
