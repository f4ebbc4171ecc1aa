package dockerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// etcdBin is Debian's etcd 3.4 (etcd-server). The project's etcd server
// (testenv.EtcdProcess) is etcd 3.6, which no longer has the v2 API that
// Docker 20.10's libkv speaks: --cluster-store etcd://… needs this one.
const etcdBin = "/usr/bin/etcd"

// EtcdV2 is an etcd 3.4 server with its v2 API on (--enable-v2), in a
// namespace of its own: the cluster store of Docker's classic overlay.
type EtcdV2 struct {
	// Addr is the IP clients reach it at (the namespace's underlay
	// address); it serves clients on Addr:2379.
	Addr string
	dir  string
	ns   *nshost.NS
	proc *testenv.Process
}

// StartEtcdV2 starts etcd in ns serving clients on addr:2379 (peers on
// the namespace's loopback: a cluster of one) with its data and log in
// dir, and waits until its v2 API answers.
func StartEtcdV2(ctx context.Context, ns *nshost.NS, addr, dir string) (*EtcdV2, error) {
	if err := Install(ctx); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	client := "http://" + net.JoinHostPort(addr, "2379")
	peer := "http://127.0.0.1:2380"
	args := []string{"--name", "store", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "store=" + peer, "--initial-cluster-state", "new",
		"--enable-v2=true", "--log-level", "warn"}
	proc, err := testenv.StartProcess(etcdBin, args,
		testenv.ProcessOptions{Log: filepath.Join(dir, "etcd.log"), NS: ns, Env: baseEnv()})
	if err != nil {
		return nil, err
	}
	e := &EtcdV2{Addr: addr, dir: dir, ns: ns, proc: proc}
	if err := e.waitReady(ctx); err != nil {
		return nil, errors.Join(err, e.Close())
	}
	return e, nil
}

// URL is the daemons' --cluster-store, etcd://ADDR:2379.
func (e *EtcdV2) URL() string { return "etcd://" + net.JoinHostPort(e.Addr, "2379") }

// ClusterStoreArgs are the flags of a Docker 20.10 daemon using store (a
// URL such as EtcdV2.URL) for the classic overlay, advertising its host's
// underlay interface: --cluster-store STORE --cluster-advertise eth0:2376.
// Its serf gossip then takes port 7946 of the host, meshagent's.
func ClusterStoreArgs(store string) []string {
	return []string{"--cluster-store", store, "--cluster-advertise", nshost.HostDev + ":2376"}
}

func (e *EtcdV2) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: e.ns.Dial, DisableKeepAlives: true}}
	url := "http://" + net.JoinHostPort(e.Addr, "2379") + "/v2/keys/"
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /v2/keys/: status %d: %s", resp.StatusCode, b)
		}
		last = err
		select {
		case <-e.proc.Exited():
			return fmt.Errorf("etcd exited with status %d while starting:\n%s", e.proc.ExitCode(), e.logTail())
		case <-ctx.Done():
			return fmt.Errorf("etcd's v2 API does not answer (%v):\n%s", last, e.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *EtcdV2) logTail() string {
	b, err := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
	if err != nil {
		return err.Error()
	}
	return tail(b, 20)
}

// Close stops etcd (SIGTERM, SIGKILL after 10s) and removes its data.
func (e *EtcdV2) Close() error {
	e.proc.Stop(10 * time.Second)
	return os.RemoveAll(filepath.Join(e.dir, "etcd"))
}
