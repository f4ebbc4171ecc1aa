package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
	"github.com/meshnet/meshnet/kvstore/backends"
	"github.com/meshnet/meshnet/testenv"
)

// kvDemo runs the cluster-store part of meshnet on one machine: an
// embedded etcd server, three "agents" that register with a TTL and race
// to create networks (each taking VNI and subnet leases and a name in one
// atomic step), a watch that sees it all, and an agent that dies and drops out.
// It returns an error unless every check holds.
func kvDemo(ctx context.Context, w io.Writer) error {
	dir, err := os.MkdirTemp("", "meshnet-kvdemo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := testenv.StartEmbedded(ctx, dir)
	if err != nil {
		return err
	}
	defer srv.Close()
	url := "etcd://" + srv.Config().Endpoints[0]
	fmt.Fprintf(w, "embedded etcd serving on %s\n", url)

	cfg, err := kvstore.ParseURL(url, nil)
	if err != nil {
		return err
	}
	agents := make([]kvstore.Store, 3)
	for i := range agents {
		if agents[i], err = backends.Open(cfg); err != nil {
			return err
		}
		defer agents[i].Close()
		node := "n" + strconv.Itoa(i+1)
		if _, err := agents[i].Register(ctx, "nodes/"+node, []byte(`{"vtep":"192.0.2.`+strconv.Itoa(i+1)+`"}`), 3*time.Second); err != nil {
			return err
		}
		fmt.Fprintf(w, "agent %s registered under %snodes/%s (TTL 3s)\n", node, cfg.Prefix, node)
	}

	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	_, rev, err := agents[0].List(ctx, "networks/")
	if err != nil {
		return err
	}
	events, err := agents[0].Watch(wctx, "networks/", rev)
	if err != nil {
		return err
	}

	// Every agent creates "shared" and three networks of its own, at once.
	type result struct {
		agent, name string
		lease       ipam.NetworkLease
		err         error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for i, s := range agents {
		for _, name := range []string{"shared", fmt.Sprintf("net-%d-a", i+1), fmt.Sprintf("net-%d-b", i+1)} {
			wg.Go(func() {
				lease, err := createNetwork(ctx, s, name)
				mu.Lock()
				results = append(results, result{"n" + strconv.Itoa(i+1), name, lease, err})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	created, vnis, subnets := 0, map[uint32]string{}, map[netip.Prefix]string{}
	for _, r := range results {
		switch {
		case r.err == nil:
			vni, subnet := r.lease.VNI, r.lease.Subnets[0].Subnet
			fmt.Fprintf(w, "  %s created %-8s with VNI %d, subnet %s\n", r.agent, r.name, vni, subnet)
			if other, dup := vnis[vni]; dup {
				return fmt.Errorf("VNI %d given to both %s and %s", vni, other, r.name)
			}
			if other, dup := subnets[subnet]; dup {
				return fmt.Errorf("subnet %s given to both %s and %s", subnet, other, r.name)
			}
			vnis[vni], subnets[subnet] = r.name, r.name
			created++
		case errors.Is(r.err, kvstore.ErrKeyExists):
			fmt.Fprintf(w, "  %s: network %q already exists\n", r.agent, r.name)
		default:
			return r.err
		}
	}
	if created != 7 {
		return fmt.Errorf("%d networks created, want 7 (one shared, two per agent)", created)
	}
	seen := 0
	for seen < created {
		select {
		case ev := <-events:
			seen++
			fmt.Fprintf(w, "  watch on n1: %s %s (version %d)\n", ev.Type, ev.Key, ev.Version)
		case <-time.After(10 * time.Second):
			return errors.New("the watch missed network creations")
		}
	}

	fmt.Fprintln(w, "agent n3 dies without deregistering…")
	agents[2].Close()
	start := time.Now()
	for {
		if _, err := agents[0].Get(ctx, "nodes/n3"); errors.Is(err, kvstore.ErrKeyNotFound) {
			break
		}
		if time.Since(start) > 30*time.Second {
			return errors.New("n3's registration did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintf(w, "  n3's registration expired after %.1fs; n1 and n2 are still registered\n", time.Since(start).Seconds())
	fmt.Fprintln(w, "kvstore demo: all checks passed")
	return nil
}

// createNetwork leases a VNI and a subnet for a new network and writes its
// record and name index in the same transaction (agent/ipam), so a lost
// race on the name leaves nothing behind.
func createNetwork(ctx context.Context, s kvstore.Store, name string) (ipam.NetworkLease, error) {
	alloc, err := ipam.New(s, ipam.Config{})
	if err != nil {
		return ipam.NetworkLease{}, err
	}
	id := strings.ToLower(rand.Text()[:12])
	return alloc.LeaseNetwork(ctx, ipam.NetworkRequest{ID: id}, func(l ipam.NetworkLease) ([]kvstore.Op, error) {
		rec, err := json.Marshal(map[string]any{"id": id, "name": name, "vni": l.VNI, "subnet": l.Subnets[0].Subnet})
		return []kvstore.Op{
			{Kind: kvstore.OpCreate, Key: "networks/" + id, Value: rec},
			{Kind: kvstore.OpCreate, Key: "names/" + name, Value: []byte(id)},
		}, err
	})
}
