package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/cluster"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// demoPort is where every demo sandbox runs its TCP and UDP echo servers.
const demoPort = 7007

// demoSandbox is one sandbox of the demo, seen from inside.
type demoSandbox struct {
	short string // c1, c2, c3
	host  *cluster.Host
	ip    netip.Addr
	ns    *nshost.NS
	echo  []*nshost.Echo
}

func (s *demoSandbox) close() {
	for _, e := range s.echo {
		e.Close()
	}
	if s.ns != nil {
		s.ns.Close()
	}
}

// overlayDemo is `make demo`: three namespace hosts each running a real
// meshagent (the first serving the embedded store), an overlay network
// created with agentctl, a sandbox per host, and real traffic between
// them across the kernel's VXLAN. It cleans up everything, also when it
// fails or is interrupted, and returns an error unless every step worked.
func overlayDemo(ctx context.Context, w io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces and needs root (sudo make demo)")
	}
	fmt.Fprintln(w, "meshnet demo: three hosts, one overlay network, real traffic across VXLAN")
	fmt.Fprint(w, "building meshagent and agentctl … ")
	bins, err := testenv.AgentBinaries(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		return err
	}
	fmt.Fprintln(w, "done")

	c, err := cluster.New(ctx, cluster.Options{Hosts: 3, Store: cluster.StoreEmbedded, Tag: "demo"})
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted; everything the demo made is removed")
		}
		return fmt.Errorf("starting the hosts: %w", err)
	}
	var sandboxes []*demoSandbox
	defer func() {
		fmt.Fprintln(w, "\ncleaning up")
		for _, s := range sandboxes {
			s.close()
		}
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleaning up: %w", cerr))
		} else {
			fmt.Fprintf(w, "  agents stopped; namespaces %s-* and files removed\n", c.Prefix)
		}
		if err != nil && ctx.Err() != nil {
			err = errors.New("interrupted; everything the demo made is removed")
		}
	}()
	defer func() {
		if err != nil && ctx.Err() == nil {
			c.DumpLogs(func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) })
		}
	}()

	fmt.Fprintf(w, "\nhosts: network namespaces %s-n1…n3 cabled to a switch on 192.0.2.0/24,\n", c.Prefix)
	fmt.Fprintf(w, "each running %s with its own config, socket and data dir\n", bins.Agent)
	for _, h := range c.Hosts() {
		store := storeLine(h)
		fmt.Fprintf(w, "  %s  %-10s cluster-store: %s\n", h.Node, h.Addr.Addr(), store)
	}

	n1 := c.Host(0)
	if _, err := run(ctx, w, n1, "network", "create", "-d", "overlay", "multi"); err != nil {
		return err
	}
	multi, err := inspect[api.Network](n1, "network", "inspect", "multi")
	if err != nil {
		return err
	}
	subnet := ""
	if len(multi.IPAM.Config) > 0 {
		subnet = multi.IPAM.Config[0].Subnet
	}
	fmt.Fprintf(w, "  network multi: id %.12s, subnet %s, VNI %d, MTU %d\n", multi.ID, subnet, multi.VNI, multi.MTU)
	created := time.Now()
	for _, h := range c.Hosts()[1:] {
		var seen api.Network
		err := retry(ctx, time.Minute, func() (err error) {
			seen, err = inspect[api.Network](h, "network", "inspect", "multi")
			return err
		})
		if err != nil {
			return err
		}
		if seen.ID != multi.ID || seen.VNI != multi.VNI {
			return fmt.Errorf("%s sees network multi as id %.12s VNI %d", h.Node, seen.ID, seen.VNI)
		}
		fmt.Fprintf(w, "  %s sees the same network (id %.12s, VNI %d), %s after the create\n",
			h.Node, seen.ID, seen.VNI, time.Since(created).Round(time.Millisecond))
	}

	for i, h := range c.Hosts() {
		s := &demoSandbox{short: "c" + strconv.Itoa(i+1), host: h}
		sandboxes = append(sandboxes, s)
		name := c.Name(s.short)
		if _, err := run(ctx, w, h, "sandbox", "create", "--net", "multi", "--network-alias", s.short, name); err != nil {
			return err
		}
		sb, err := inspect[api.Sandbox](h, "sandbox", "inspect", name)
		if err != nil {
			return err
		}
		if s.ip, err = netip.ParseAddr(sb.Networks["multi"].IPAddress); err != nil {
			return fmt.Errorf("sandbox %s has no address on multi: %+v", name, sb.Networks)
		}
		if err := s.serve(name); err != nil {
			return err
		}
		fmt.Fprintf(w, "  %s: %s on %s, MAC %s, netns %s\n", s.short, s.ip, h.Node, sb.Networks["multi"].MacAddress, sb.NetNS)
	}

	fmt.Fprintln(w, "\ntraffic between the sandboxes (real packets, VXLAN over the underlay):")
	for i, from := range sandboxes {
		for j, to := range sandboxes {
			if i == j {
				continue
			}
			line, err := converse(ctx, from, to)
			if err != nil {
				return err
			}
			fmt.Fprintln(w, "  "+line)
		}
	}

	fmt.Fprintln(w, "\nby name: each sandbox asks the embedded DNS at 127.0.0.11 for the others' aliases:")
	for i, from := range sandboxes {
		to := sandboxes[(i+1)%len(sandboxes)]
		line, err := byName(ctx, from, to)
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "  "+line)
	}

	final, err := inspect[api.Network](c.Host(1), "network", "inspect", "multi")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nn2$ agentctl network inspect multi → %d endpoints:", len(final.Containers))
	for _, ep := range final.Containers {
		fmt.Fprintf(w, " %s@%s", strings.TrimPrefix(ep.Name, c.Prefix+"-"), ep.Node)
	}
	fmt.Fprintln(w)
	if len(final.Containers) != len(sandboxes) {
		return fmt.Errorf("network multi lists %d endpoints, want %d", len(final.Containers), len(sandboxes))
	}

	web := &demoSandbox{short: "web", host: c.Host(1)}
	sandboxes = append(sandboxes, web)
	if err := outsideDemo(ctx, w, c, sandboxes[0], web); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nremoving what the demo made:")
	for _, s := range sandboxes {
		s.close()
		if _, err := run(ctx, w, s.host, "sandbox", "rm", c.Name(s.short)); err != nil {
			return err
		}
	}
	sandboxes = nil
	if _, err := run(ctx, w, n1, "network", "rm", "multi"); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\ndemo OK: three hosts talked over overlay network multi, by address and by name; a sandbox reached the outside; a published port answered")
	return nil
}

// outsideDemo shows the world beyond the cluster: a namespace on the
// underlay that runs no agent sees a sandbox's connection come from the
// sandbox's host (masqueraded), and reaches a port published by another
// sandbox on its host.
func outsideDemo(ctx context.Context, w io.Writer, c *cluster.Cluster, from, web *demoSandbox) error {
	out, err := c.AddOutside()
	if err != nil {
		return err
	}
	who, err := out.ServeWhoAmI(":" + strconv.Itoa(demoPort))
	if err != nil {
		return err
	}
	defer who.Close()
	fmt.Fprintf(w, "\nthe outside: namespace %s at %s on the underlay, no agent, answering\n", out.Name, out.Addr.Addr())
	fmt.Fprintln(w, "every TCP connection with the address it came from")
	dst := net.JoinHostPort(out.Addr.Addr().String(), strconv.Itoa(demoPort))
	var seen string
	err = retry(ctx, time.Minute, func() (err error) {
		seen, err = from.ns.AskWhoAmI(ctx, dst)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s@%s → the outside: %w", from.short, from.host.Node, err)
	}
	fmt.Fprintf(w, "  %s@%s (%s) → %s: the outside sees %s, its host (masqueraded)\n", from.short, from.host.Node, from.ip, dst, seen)
	if seen != from.host.Addr.Addr().String() {
		return fmt.Errorf("the outside sees %s's connection from %s, want its host's %s", from.short, seen, from.host.Addr.Addr())
	}

	name := c.Name(web.short)
	if _, err := run(ctx, w, web.host, "sandbox", "create", "--net", "multi", "-p", "8080:"+strconv.Itoa(demoPort), name); err != nil {
		return err
	}
	if err := web.serve(name); err != nil {
		return err
	}
	if _, err := run(ctx, w, web.host, "sandbox", "port", name); err != nil {
		return err
	}
	published := net.JoinHostPort(web.host.Addr.Addr().String(), "8080")
	var rtt time.Duration
	err = retry(ctx, time.Minute, func() error {
		conn, err := out.Dial(ctx, "tcp", published)
		if err != nil {
			return err
		}
		defer conn.Close()
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		rtt, err = nshost.RoundTrip(rctx, conn, []byte("hello from outside"))
		return err
	})
	if err != nil {
		return fmt.Errorf("the outside → published port %s: %w", published, err)
	}
	fmt.Fprintf(w, "  the outside → %s (published, DNAT to %s@%s): TCP echo %s\n", published, web.short, web.host.Node, ms(rtt))
	return nil
}

// byName resolves to.short from inside from's namespace through the
// embedded DNS (as the sandbox's resolv.conf says), then does a TCP echo
// to the address it got.
func byName(ctx context.Context, from, to *demoSandbox) (string, error) {
	what := fmt.Sprintf("%s@%s → %s", from.short, from.host.Node, to.short)
	var addr netip.Addr
	var took time.Duration
	err := retry(ctx, time.Minute, func() error {
		start := time.Now()
		c, err := from.ns.Dial(ctx, "udp", "127.0.0.11:53")
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		co := &dns.Conn{Conn: c}
		if err := co.WriteMsg(new(dns.Msg).SetQuestion(to.short+".", dns.TypeA)); err != nil {
			return err
		}
		m, err := co.ReadMsg()
		if err != nil {
			return err
		}
		took = time.Since(start)
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.A); ok {
				addr, _ = netip.AddrFromSlice(a.A.To4())
				return nil
			}
		}
		return fmt.Errorf("no address for %s (%s)", to.short, dns.RcodeToString[m.Rcode])
	})
	if err != nil {
		return "", fmt.Errorf("%s: resolving: %w", what, err)
	}
	if addr != to.ip {
		return "", fmt.Errorf("%s: resolved to %s, the sandbox has %s", what, addr, to.ip)
	}
	conn, err := from.ns.Dial(ctx, "tcp", net.JoinHostPort(addr.String(), strconv.Itoa(demoPort)))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rtt, err := nshost.RoundTrip(rctx, conn, []byte("hello by name"))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Sprintf("%-22s %s is %s (answered in %s)   TCP echo by name %s", what, to.short, addr, ms(took), ms(rtt)), nil
}

// storeLine says where a host's agent finds the cluster store.
func storeLine(h *cluster.Host) string {
	b, err := os.ReadFile(h.ConfigPath())
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "cluster-store: "); ok {
			if v == "embedded" {
				return "embedded (serves etcd to the others on " + h.Addr.Addr().String() + ":2379, TLS with the cluster's own CA)"
			}
			if strings.Contains(string(b), "cluster-token-file:") {
				return v + " (joined with n1's join token)"
			}
			return v
		}
	}
	return "?"
}

// run shows and runs agentctl on h; a failure is an error with its message.
func run(ctx context.Context, w io.Writer, h *cluster.Host, args ...string) (string, error) {
	fmt.Fprintf(w, "\n%s$ agentctl %s\n", h.Node, strings.Join(args, " "))
	r := h.AgentCtlContext(ctx, args...)
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if r.Code != 0 {
		return "", fmt.Errorf("agentctl %s on %s failed (exit %d): %s", strings.Join(args, " "), h.Node, r.Code, strings.TrimSpace(r.Stderr))
	}
	if out := strings.TrimSpace(r.Stdout); out != "" {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(out, "\n", "\n  "))
	}
	return r.Stdout, nil
}

// inspect runs an agentctl inspect command (JSON, one object in an
// array) without showing it and decodes the object.
func inspect[T any](h *cluster.Host, args ...string) (T, error) {
	var list []T
	r := h.AgentCtl(args...)
	if r.Code != 0 {
		return *new(T), fmt.Errorf("agentctl %s on %s failed: %s", strings.Join(args, " "), h.Node, strings.TrimSpace(r.Stderr))
	}
	if err := json.Unmarshal([]byte(r.Stdout), &list); err != nil || len(list) != 1 {
		return *new(T), fmt.Errorf("agentctl %s on %s printed no single object (%v)", strings.Join(args, " "), h.Node, err)
	}
	return list[0], nil
}

// serve opens the sandbox's namespace and starts echo servers in it.
func (s *demoSandbox) serve(name string) error {
	ns, err := nshost.OpenNS(name)
	if err != nil {
		return err
	}
	s.ns = ns
	for _, network := range []string{"tcp", "udp"} {
		e, err := ns.ServeEcho(network, "0.0.0.0:"+strconv.Itoa(demoPort))
		if err != nil {
			return err
		}
		s.echo = append(s.echo, e)
	}
	return nil
}

// converse pings from one sandbox to another and does a TCP and a UDP
// echo round trip, waiting up to a minute for the cluster to converge,
// and describes the round-trip times.
func converse(ctx context.Context, from, to *demoSandbox) (string, error) {
	what := fmt.Sprintf("%s@%s → %s@%s (%s)", from.short, from.host.Node, to.short, to.host.Node, to.ip)
	var rtts []time.Duration
	err := retry(ctx, time.Minute, func() (err error) {
		rtts, err = from.ns.Ping(ctx, to.ip, 3, 100*time.Millisecond, 2*time.Second)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s: ping: %w", what, err)
	}
	line := fmt.Sprintf("%-28s ping %d/3 %s", what, len(rtts), minAvgMax(rtts))
	addr := net.JoinHostPort(to.ip.String(), strconv.Itoa(demoPort))
	for _, network := range []string{"tcp", "udp"} {
		var rtt time.Duration
		err := retry(ctx, time.Minute, func() error {
			c, err := from.ns.Dial(ctx, network, addr)
			if err != nil {
				return err
			}
			defer c.Close()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			rtt, err = nshost.RoundTrip(rctx, c, []byte("hello from "+from.short))
			return err
		})
		if err != nil {
			return "", fmt.Errorf("%s: %s echo: %w", what, network, err)
		}
		line += fmt.Sprintf("   %s echo %s", strings.ToUpper(network), ms(rtt))
	}
	return line, nil
}

// retry calls fn until it succeeds, ctx ends or limit passes, and
// returns its last error.
func retry(ctx context.Context, limit time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func minAvgMax(d []time.Duration) string {
	lo, hi, sum := d[0], d[0], time.Duration(0)
	for _, x := range d {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	return fmt.Sprintf("rtt min/avg/max %s/%s/%s", ms(lo), ms(sum/time.Duration(len(d))), ms(hi))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond)) }
