package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnet/meshnet/agent/dockerplugin"
)

// serveDocker serves Docker's plugin protocol on the docker-plugin socket
// and keeps the docker-host dockerd's meshnet networks in step; the
// returned function stops both. Nothing is served when docker-plugin is
// empty.
func (a *Agent) serveDocker() (stop func(), err error) {
	if a.cfg.DockerPlugin == "" {
		return func() {}, nil
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
