package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/agent/api"
)

// sandboxCreateFlags are the flags of sandbox create and run; each call
// returns new flags, since a flag holds its parsed value.
func sandboxCreateFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "net", Aliases: []string{"network"}, Usage: "attach to `NETWORK`: a name or ID, bridge, none, host or container:NAME (repeatable; eth0, eth1, … in order; default: bridge)"},
		&cli.StringFlag{Name: "hostname", Usage: "host name of the sandbox"},
		&cli.StringFlag{Name: "ip", Usage: "IPv4 address on the first network"},
		&cli.StringFlag{Name: "ip6", Usage: "IPv6 address on the first network"},
		&cli.StringSliceFlag{Name: "network-alias", Usage: "`ALIAS` on the first network (repeatable)"},
		&cli.StringSliceFlag{Name: "link", Usage: "`SANDBOX:ALIAS` link on the first network (repeatable)"},
		&cli.StringSliceFlag{Name: "dns", Usage: "DNS server `IP` (repeatable)"},
		&cli.StringSliceFlag{Name: "dns-opt", Usage: "resolv.conf `OPTION` (repeatable)"},
		&cli.StringSliceFlag{Name: "dns-search", Usage: "DNS search `DOMAIN` (repeatable)"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "publish a port: `[HOSTIP:]HOSTPORT:PORT[/tcp|udp]` (repeatable)"},
		&cli.BoolFlag{Name: "publish-all", Aliases: []string{"P"}, Usage: "publish every exposed port on a random host port"},
		&cli.StringSliceFlag{Name: "expose", Usage: "expose a `PORT[/PROTO]` without publishing it (repeatable)"},
		&cli.StringFlag{Name: "netns", Usage: "adopt the existing network namespace at `PATH` (such as /proc/PID/ns/net)"},
	}
}

// sandboxOptions are the flags of sandbox create.
type sandboxOptions struct {
	networks                 []string
	hostname, ip, ip6, netns string
	aliases, links           []string
	dns, dnsOpts, dnsSearch  []string
	publish, expose          []string
	publishAll               bool
}

func sandboxOptionsFrom(c *cli.Context) sandboxOptions {
	return sandboxOptions{
		networks:   c.StringSlice("net"),
		hostname:   c.String("hostname"),
		ip:         c.String("ip"),
		ip6:        c.String("ip6"),
		netns:      c.String("netns"),
		aliases:    c.StringSlice("network-alias"),
		links:      c.StringSlice("link"),
		dns:        c.StringSlice("dns"),
		dnsOpts:    c.StringSlice("dns-opt"),
		dnsSearch:  c.StringSlice("dns-search"),
		publish:    c.StringSlice("publish"),
		expose:     c.StringSlice("expose"),
		publishAll: c.Bool("publish-all"),
	}
}

// sandboxCreateRequest maps sandbox create's flags to the API request.
// As with docker run, --ip, --ip6, --network-alias and --link are about
// the first network; without --net, that is the default bridge network.
func sandboxCreateRequest(name string, o sandboxOptions) (api.SandboxCreate, error) {
	req := api.SandboxCreate{
		Name:       name,
		Hostname:   o.hostname,
		NetNS:      o.netns,
		DNS:        o.dns,
		DNSOpts:    o.dnsOpts,
		DNSSearch:  o.dnsSearch,
		Publish:    o.publish,
		PublishAll: o.publishAll,
		Expose:     o.expose,
	}
	if err := checkAddr(o.ip, false); err != nil {
		return req, err
	}
	if err := checkAddr(o.ip6, true); err != nil {
		return req, err
	}
	links, err := parseLinks(o.links)
	if err != nil {
		return req, err
	}
	for _, n := range o.networks {
		if n == "" {
			return req, fmt.Errorf("invalid --net \"\": expected a network name or ID")
		}
		req.Networks = append(req.Networks, api.NetworkAttachment{Network: n})
	}
	if o.ip == "" && o.ip6 == "" && len(o.aliases) == 0 && len(links) == 0 {
		return req, nil
	}
	if len(req.Networks) == 0 {
		req.Networks = []api.NetworkAttachment{{Network: api.DriverBridge}}
	}
	first := &req.Networks[0]
	first.IP, first.IP6, first.Aliases, first.Links = o.ip, o.ip6, o.aliases, links
	return req, nil
}
