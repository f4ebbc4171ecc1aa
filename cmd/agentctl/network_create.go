package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
)

func networkCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "Create a network",
		ArgsUsage: "NAME",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "driver", Aliases: []string{"d"}, Value: api.DriverBridge, Usage: "driver of the network: bridge, overlay, null, host, or a remote driver plugin"},
			&cli.StringSliceFlag{Name: "subnet", Usage: "subnet in CIDR form (repeatable: one IPAM config each)"},
			&cli.StringSliceFlag{Name: "gateway", Usage: "gateway address of the subnet that contains it (repeatable)"},
			&cli.StringSliceFlag{Name: "ip-range", Usage: "allocate addresses from this CIDR range of the subnet that contains it (repeatable)"},
			&cli.StringSliceFlag{Name: "aux-address", Usage: "`NAME=IP` address the IPAM must not hand out (repeatable)"},
			&cli.StringFlag{Name: "ipam-driver", Usage: "IPAM driver"},
			&cli.StringSliceFlag{Name: "ipam-opt", Usage: "`KEY=VALUE` option of the IPAM driver (repeatable)"},
			&cli.BoolFlag{Name: "ipv6", Usage: "enable IPv6"},
			&cli.BoolFlag{Name: "internal", Usage: "restrict external access to the network"},
			&cli.BoolFlag{Name: "attachable", Usage: "let sandboxes be attached to the network by hand"},
			&cli.BoolFlag{Name: "ingress", Usage: "create the routing-mesh (ingress) network"},
			&cli.StringSliceFlag{Name: "label", Usage: "`KEY=VALUE` label of the network (repeatable)"},
			&cli.StringSliceFlag{Name: "opt", Aliases: []string{"o"}, Usage: "`KEY=VALUE` driver option (repeatable)"},
			&cli.StringFlag{Name: "scope", Usage: "`SCOPE` of the network: local or global; the driver's own by default"},
			&cli.BoolFlag{Name: "config-only", Usage: "create a configuration-only network, for --config-from"},
			&cli.StringFlag{Name: "config-from", Usage: "take the configuration from this config-only `NETWORK`"},
		},
		Action: networkCreate,
	}
}

func networkCreate(c *cli.Context) error {
	if err := exactArgs(c, 1); err != nil {
		return err
	}
	req, err := networkCreateRequest(c.Args().First(), networkCreateOptions{
		driver:       c.String("driver"),
		subnets:      c.StringSlice("subnet"),
		gateways:     c.StringSlice("gateway"),
		ipRanges:     c.StringSlice("ip-range"),
		auxAddresses: c.StringSlice("aux-address"),
		ipamDriver:   c.String("ipam-driver"),
		ipamOpts:     c.StringSlice("ipam-opt"),
		ipv6:         c.Bool("ipv6"),
		internal:     c.Bool("internal"),
		attachable:   c.Bool("attachable"),
		ingress:      c.Bool("ingress"),
		labels:       c.StringSlice("label"),
		opts:         c.StringSlice("opt"),
		scope:        c.String("scope"),
		configOnly:   c.Bool("config-only"),
		configFrom:   c.String("config-from"),
	})
	if err != nil {
		return err
	}
	cl, err := connect(c)
	if err != nil {
		return err
	}
	ctx, cancel := callContext(c)
	defer cancel()
	resp, err := cl.NetworkCreate(ctx, req)
	if err != nil {
		return err
	}
	if resp.Warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "WARNING: %s\n", oneLine(resp.Warning))
	}
	fmt.Fprintln(c.App.Writer, resp.ID)
	return nil
}

// networkCreateOptions are the flags of network create.
type networkCreateOptions struct {
	driver, ipamDriver, scope, configFrom               string
	subnets, gateways, ipRanges, auxAddresses, ipamOpts []string
	labels, opts                                        []string
	ipv6, internal, attachable, ingress, configOnly     bool
}

// networkCreateRequest maps network create's flags to the API request.
func networkCreateRequest(name string, o networkCreateOptions) (api.NetworkCreate, error) {
	req := api.NetworkCreate{
		Name:       name,
		Driver:     o.driver,
		Scope:      o.scope,
		EnableIPv6: o.ipv6,
		Internal:   o.internal,
		Attachable: o.attachable,
		Ingress:    o.ingress,
		ConfigOnly: o.configOnly,
	}
	if o.configFrom != "" {
		req.ConfigFrom = &api.ConfigReference{Network: o.configFrom}
	}
	var err error
	if req.Options, err = parseKV("opt", o.opts, false); err != nil {
		return req, err
	}
	if req.Labels, err = parseKV("label", o.labels, true); err != nil {
		return req, err
	}
	ipamOpts, err := parseKV("ipam-opt", o.ipamOpts, false)
	if err != nil {
		return req, err
	}
	configs, err := ipamConfigs(o.subnets, o.ipRanges, o.gateways, o.auxAddresses)
	if err != nil {
		return req, err
	}
	if len(configs) > 0 || o.ipamDriver != "" || len(ipamOpts) > 0 {
		req.IPAM = &api.IPAM{Driver: o.ipamDriver, Options: ipamOpts, Config: configs}
	}
	return req, nil
}

// ipamConfigs makes one IPAM config per subnet, as docker network create
// does, and gives each ip-range, gateway and aux-address to the subnet
// that contains it: at most one range and one gateway per subnet, and
// every one of them in some subnet.
func ipamConfigs(subnets, ranges, gateways, aux []string) ([]api.IPAMConfig, error) {
	type pool struct {
		prefix netip.Prefix
		config api.IPAMConfig
	}
	pools := make([]*pool, 0, len(subnets))
	for _, s := range subnets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("invalid subnet %q: expected CIDR form, like 10.1.0.0/24", s)
		}
		for _, other := range pools {
			if other.prefix.Overlaps(p) {
				return nil, fmt.Errorf("subnets %s and %s overlap", other.config.Subnet, s)
			}
		}
		pools = append(pools, &pool{prefix: p.Masked(), config: api.IPAMConfig{Subnet: s}})
	}
	containing := func(a netip.Addr, bits int) *pool {
		for _, p := range pools {
			if p.prefix.Contains(a) && bits >= p.prefix.Bits() {
				return p
			}
		}
		return nil
	}

	for _, r := range ranges {
		rp, err := netip.ParsePrefix(r)
		if err != nil {
			return nil, fmt.Errorf("invalid ip-range %q: expected CIDR form, like 10.1.0.128/25", r)
		}
		p := containing(rp.Addr(), rp.Bits())
		switch {
		case p == nil:
			return nil, fmt.Errorf("no matching subnet for range %s", r)
		case p.config.IPRange != "":
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", p.config.IPRange, r, p.config.Subnet)
		}
		p.config.IPRange = r
	}
	for _, g := range gateways {
		a, err := netip.ParseAddr(g)
		if err != nil {
			return nil, fmt.Errorf("invalid gateway %q: expected an IP address", g)
		}
		p := containing(a, a.BitLen())
		switch {
		case p == nil:
			return nil, fmt.Errorf("no matching subnet for gateway %s", g)
		case p.config.Gateway != "":
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", p.config.Gateway, g, p.config.Subnet)
		}
		p.config.Gateway = g
	}
	for _, kv := range aux {
		name, ip, ok := strings.Cut(kv, "=")
		a, err := netip.ParseAddr(ip)
		if !ok || name == "" || err != nil {
			return nil, fmt.Errorf("invalid --aux-address %q: expected NAME=IP", kv)
		}
		p := containing(a, a.BitLen())
		if p == nil {
			return nil, fmt.Errorf("no matching subnet for aux-address %s", ip)
		}
		if p.config.AuxAddress == nil {
			p.config.AuxAddress = make(map[string]string)
		}
		p.config.AuxAddress[name] = ip
	}

	configs := make([]api.IPAMConfig, len(pools))
	for i, p := range pools {
		configs[i] = p.config
	}
	return configs, nil
}
