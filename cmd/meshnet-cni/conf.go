package main

// The net conf and CNI_ARGS, parsed and checked before anything is asked
// of the agent.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/agent/client"
)

// netConf is the plugin's configuration: the standard keys, the meshnet
// network and the agent's socket, and the runtime capabilities it uses.
type netConf struct {
	types.PluginConf
	// Network is the meshnet network; "" means Name.
	Network string `json:"network"`
	// Socket is the agent's API address; "" means client.DefaultHost.
	Socket        string        `json:"socket"`
	RuntimeConfig runtimeConfig `json:"runtimeConfig"`
	Args          struct {
		CNI struct {
			IPs []string `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
}

// runtimeConfig holds the capabilities the runtime fills in (CNI's
// CONVENTIONS.md): ips, mac, portMappings and aliases.
type runtimeConfig struct {
	IPs          []string            `json:"ips"`
	MAC          string              `json:"mac"`
	PortMappings []portMapping       `json:"portMappings"`
	Aliases      map[string][]string `json:"aliases"`
}

type portMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP"`
}

// cniArgs are the CNI_ARGS keys the plugin reads (the reference plugins'
// IP and MAC, and the container name Podman and kubelet pass).
type cniArgs struct {
	types.CommonArgs
	IP           types.UnmarshallableString
	MAC          types.UnmarshallableString
	K8S_POD_NAME types.UnmarshallableString //nolint:revive // the key's name
}

// confError is a configuration error: one sentence, CNI code 7.
type confError struct{ msg string }

func (e *confError) Error() string { return e.msg }

func badConf(format string, args ...any) error {
	return &confError{msg: fmt.Sprintf(format, args...)}
}

// parseConf reads the net conf from stdin's bytes, including a previous
// plugin's result.
func parseConf(data []byte) (*netConf, error) {
	var c netConf
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, badConf("the network configuration is not valid JSON: %s", jsonProblem(err))
	}
	if c.Type != "meshnet" {
		return nil, badConf("the network configuration's type is %q, not \"meshnet\"", c.Type)
	}
	if c.Name == "" {
		return nil, badConf("the network configuration has no name")
	}
	if c.Network == "" {
		c.Network = c.Name
	}
	if _, err := client.New(c.Socket); err != nil {
		return nil, badConf("invalid socket %q: expected unix:///PATH or tcp://HOST:PORT", c.Socket)
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.PluginConf); err != nil {
			return nil, badConf("the previous plugin's result cannot be read: %v", err)
		}
	}
	return &c, nil
}

// jsonProblem is a JSON decoding error without Go's type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn) && strings.HasPrefix(syn.Error(), "unexpected end"):
		return "it ends too early"
	case errors.As(err, &syn):
		return fmt.Sprintf("a syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q is a JSON %s, which it cannot be", typ.Field, typ.Value)
	}
	return "it ends too early"
}

// addRequest builds the agent's ADD request from the conf and the
// runtime's arguments. Addresses come from the ips capability, else
// args.cni.ips, else CNI_ARGS IP= (comma-separated); a MAC from the mac
// capability, else CNI_ARGS MAC=.
func addRequest(c *netConf, containerID, netns, ifname, rawArgs string) (api.CNIAdd, error) {
	req := api.CNIAdd{CNIAttachment: api.CNIAttachment{ContainerID: containerID, IfName: ifname},
		NetNS: netns, Network: c.Network}
	var args cniArgs
	if err := types.LoadArgs(rawArgs, &args); err != nil {
		return req, badConf("invalid CNI_ARGS: %v", err)
	}
	req.Name = string(args.K8S_POD_NAME)
	ips := c.RuntimeConfig.IPs
	if len(ips) == 0 {
		ips = c.Args.CNI.IPs
	}
	if len(ips) == 0 && args.IP != "" {
		ips = strings.Split(string(args.IP), ",")
	}
	for _, s := range ips {
		addr, err := parseIP(s)
		if err != nil {
			return req, err
		}
		field := &req.IP
		if addr.Is6() {
			field = &req.IP6
		}
		if *field != "" {
			return req, badConf("more than one IPv%d address asked for (%s and %s): one per family", map[bool]int{true: 6, false: 4}[addr.Is6()], *field, addr)
		}
		*field = addr.String()
	}
	req.MAC = c.RuntimeConfig.MAC
	if req.MAC == "" {
		req.MAC = string(args.MAC)
	}
	if req.MAC != "" {
		if _, err := net.ParseMAC(req.MAC); err != nil {
			return req, badConf("invalid MAC address %q", req.MAC)
		}
	}
	for _, p := range c.RuntimeConfig.PortMappings {
		req.Ports = append(req.Ports, api.CNIPortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort,
			Protocol: p.Protocol, HostIP: p.HostIP})
	}
	req.Aliases = c.RuntimeConfig.Aliases[c.Name]
	if c.Network != c.Name {
		req.Aliases = append(req.Aliases, c.RuntimeConfig.Aliases[c.Network]...)
	}
	return req, nil
}

// parseIP reads an address as the ips capability gives it: with or
// without a prefix length (the network's own is used).
func parseIP(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, badConf("invalid IP address %q", s)
	}
	return a.Unmap(), nil
}
