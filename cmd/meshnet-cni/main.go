// Command meshnet-cni is meshnet's CNI plugin, installed as the binary
// "meshnet" (in /opt/cni/bin): it puts a container runtime's namespace on
// a meshnet network (docs/design.md §8). It is a thin client of the local
// meshagent's API: the agent leases the address, plumbs the veth into the
// namespace, programs the datapath, announces the endpoint to the cluster
// and answers with what the plugin prints as the CNI result.
//
// ADD, DEL, CHECK, STATUS, GC and VERSION of CNI 1.1 (results also as
// 0.3.x, 0.4.0 and 1.0.0). Errors are CNI error objects with one sentence.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
)

// callTimeout bounds each call to the agent: a little more than the
// agent's own bound on an operation, so its answer arrives first.
const callTimeout = 45 * time.Second

// codeConflict is meshnet's own error code (CNI leaves 100 and up to
// plugins): the request contradicts the agent's state (an address in use,
// an interface already attached).
const codeConflict = 100

// codeNotAvailable is CNI's "plugin not available" of STATUS: ADD would
// fail now (the agent or the cluster store cannot serve it).
const codeNotAvailable = 50

// Version is set at build time (-ldflags "-X main.Version=…").
var Version = "dev"

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, GC: cmdGC, Status: cmdStatus},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"),
		"meshnet CNI plugin "+Version)
}

// withAgent parses the conf, opens a client of its agent and runs fn
// with it, bounded by callTimeout.
func withAgent(stdin []byte, fn func(ctx context.Context, conf *netConf, cl *client.Client) error) error {
	conf, err := parseConf(stdin)
	if err != nil {
		return cniError(err, 0)
	}
	cl, err := client.New(conf.Socket)
	if err != nil {
		return cniError(badConf("%v", err), 0)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return fn(ctx, conf, cl)
}

func cmdAdd(args *skel.CmdArgs) error {
	return withAgent(args.StdinData, func(ctx context.Context, conf *netConf, cl *client.Client) error {
		return add(ctx, conf, cl, args)
	})
}

func add(ctx context.Context, conf *netConf, cl *client.Client, args *skel.CmdArgs) error {
	req, err := addRequest(conf, args.ContainerID, args.Netns, args.IfName, args.Args)
	if err != nil {
		return cniError(err, 0)
	}
	res, err := cl.CNIAdd(ctx, req)
	if err != nil {
		return cniError(err, types.ErrInvalidNetworkConfig)
	}
	out, err := result(conf, res)
	if err != nil {
		return cniError(err, 0)
	}
	return types.PrintResult(out, conf.CNIVersion)
}

// result is the CNI result of an attachment, after the previous plugins'
// (when meshnet is not first in a chain).
func result(conf *netConf, r api.CNIResult) (*current.Result, error) {
	out := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if conf.PrevResult != nil {
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return nil, badConf("the previous plugin's result cannot be converted: %v", err)
		}
		out = prev
	}
	idx := len(out.Interfaces)
	out.Interfaces = append(out.Interfaces, &current.Interface{Name: r.Interface, Mac: r.MacAddress, Mtu: r.MTU, Sandbox: r.NetNS})
	for _, a := range []struct{ addr, gw, dflt string }{{r.IPv4Address, r.Gateway, "0.0.0.0/0"}, {r.IPv6Address, r.IPv6Gateway, "::/0"}} {
		if a.addr == "" {
			continue
		}
		ip, ipnet, err := net.ParseCIDR(a.addr)
		if err != nil {
			return nil, fmt.Errorf("the agent answered an invalid address %q", a.addr)
		}
		ipnet.IP = ip
		gw := net.ParseIP(a.gw)
		out.IPs = append(out.IPs, &current.IPConfig{Interface: current.Int(idx), Address: *ipnet, Gateway: gw})
		if r.DefaultRoute && gw != nil {
			_, dst, _ := net.ParseCIDR(a.dflt)
			out.Routes = append(out.Routes, &types.Route{Dst: *dst, GW: gw})
		}
	}
	if len(r.DNS.Nameservers) > 0 && len(out.DNS.Nameservers) == 0 {
		out.DNS = types.DNS{Nameservers: r.DNS.Nameservers, Search: r.DNS.Search, Options: r.DNS.Options}
	}
	return out, nil
}

func cmdDel(args *skel.CmdArgs) error {
	return withAgent(args.StdinData, func(ctx context.Context, conf *netConf, cl *client.Client) error {
		err := cl.CNIDel(ctx, api.CNIDel{CNIAttachment: api.CNIAttachment{ContainerID: args.ContainerID, IfName: args.IfName},
			Network: conf.Network})
		return cniError(err, 0)
	})
}

func cmdCheck(args *skel.CmdArgs) error {
	return withAgent(args.StdinData, func(ctx context.Context, conf *netConf, cl *client.Client) error {
		return check(ctx, conf, cl, args)
	})
}

func check(ctx context.Context, conf *netConf, cl *client.Client, args *skel.CmdArgs) error {
	res, err := cl.CNICheck(ctx, api.CNICheck{CNIAttachment: api.CNIAttachment{ContainerID: args.ContainerID, IfName: args.IfName},
		NetNS: args.Netns, Network: conf.Network})
	if err != nil {
		return cniError(err, types.ErrUnknownContainer)
	}
	if conf.PrevResult == nil {
		return cniError(badConf("CHECK needs the result of ADD (prevResult) in the configuration"), 0)
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return cniError(badConf("the previous result cannot be read: %v", err), 0)
	}
	// The agent's attachment must be the one the runtime was told of.
	i := slices.IndexFunc(prev.Interfaces, func(i *current.Interface) bool { return i.Name == res.Interface && i.Sandbox != "" })
	if i < 0 {
		return cniError(fmt.Errorf("the previous result has no interface %s in a sandbox", res.Interface), 0)
	}
	if prev.Interfaces[i].Mac != "" && prev.Interfaces[i].Mac != res.MacAddress {
		return cniError(fmt.Errorf("interface %s has MAC %s, the previous result says %s", res.Interface, res.MacAddress, prev.Interfaces[i].Mac), 0)
	}
	for _, want := range []string{res.IPv4Address, res.IPv6Address} {
		if want == "" {
			continue
		}
		if !slices.ContainsFunc(prev.IPs, func(c *current.IPConfig) bool {
			return c.Interface != nil && *c.Interface == i && c.Address.String() == want
		}) {
			return cniError(fmt.Errorf("the previous result lacks the address %s of interface %s", want, res.Interface), 0)
		}
	}
	return nil
}

func cmdGC(args *skel.CmdArgs) error {
	return withAgent(args.StdinData, func(ctx context.Context, conf *netConf, cl *client.Client) error {
		req := api.CNIGC{Network: conf.Network, Valid: []api.CNIAttachment{}}
		for _, v := range conf.ValidAttachments {
			req.Valid = append(req.Valid, api.CNIAttachment{ContainerID: v.ContainerID, IfName: v.IfName})
		}
		_, err := cl.CNIGC(ctx, req)
		return cniError(err, 0)
	})
}

func cmdStatus(args *skel.CmdArgs) error {
	return withAgent(args.StdinData, func(ctx context.Context, conf *netConf, cl *client.Client) error {
		if err := cl.CNIStatus(ctx, conf.Network); err != nil {
			return types.NewError(codeNotAvailable, oneLine(err), "")
		}
		return nil
	})
}

// cniError turns an error into a CNI error object: configuration errors
// are 7, an agent that cannot be reached or a store that is down 11 (try
// again later), a conflict 100, a refusal the agent calls "not found"
// notFound, anything else 999.
func cniError(err error, notFound uint) error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	code := uint(types.ErrInternal)
	var ce *confError
	switch {
	case errors.As(err, &ce):
		code = types.ErrInvalidNetworkConfig
	case errors.Is(err, client.ErrUnreachable), client.IsUnavailable(err):
		code = types.ErrTryAgainLater
	case client.IsConflict(err):
		code = codeConflict
	case client.IsNotFound(err) && notFound != 0:
		code = notFound
	case client.IsBadRequest(err):
		code = types.ErrInvalidNetworkConfig
	}
	return types.NewError(code, oneLine(err), "")
}

// oneLine is an error's first line.
func oneLine(err error) string {
	s := err.Error()
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
