package agent

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"
	"gopkg.in/yaml.v3"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/trust"
	"github.com/meshnet/meshnet/kvstore"
)

// DefaultConfigFile is read when --config is not given and the file exists.
const DefaultConfigFile = "/etc/meshnet/agent.yaml"

// DefaultGossipPort is the gossip port when cluster-advertise names none.
const DefaultGossipPort = 7946

// Config is the agent's configuration (docs/design.md §2), after validation.
type Config struct {
	NodeName       string
	Store          kvstore.Config
	StoreURL       string
	AdvertiseIface string     // set when cluster-advertise names an interface
	AdvertiseAddr  netip.Addr // set when it names an address
	GossipPort     int
	DataDir        string
	Hosts          []string
	Bridge         string
	BIP            netip.Prefix
	ICC            bool
	IPForward      bool
	IPTables       bool
	MTU            int
	DNS            []netip.Addr
	DNSOpts        []string
	DNSSearch      []string
	VXLANPort      int
	// NodeReclaimAfter is how long a node must have been absent before
	// its address leases are given back to the cluster.
	NodeReclaimAfter time.Duration
	GlobalPools      []ipam.AddressPool // subnets of overlay networks
	LocalPools       []ipam.AddressPool // subnets of bridge networks
	GossipKey        []byte
	// ConfigFile is the configuration file read, if any.
	ConfigFile string
	// Args is the command line, for the warning about secrets in flags.
	Args []string
	// APITLS is the mutual TLS of tcp:// API addresses (tlsverify).
	APITLS *tls.Config
	// JoinToken joins a cluster whose store is another agent's embedded
	// one (cluster-token or cluster-token-file).
	JoinToken *trust.Token
	LogLevel  string
	LogFormat string
	// DockerPlugin is the socket of Docker's network and IPAM plugin
	// ("" for none); DockerHost the local dockerd whose meshnet networks
	// the agent keeps equal to the cluster's ("" for none).
	DockerPlugin string
	DockerHost   string
	// DockerDNS is the address (on the loopback device) where the
	// agent answers DNS for Docker's resolver: the daemon's dns setting.
	DockerDNS netip.Addr
}

// Flags are meshagent's flags: every configuration key is a flag of the
// same name, an environment variable MESHNET_<KEY>, and a key of the YAML
// file. Flags beat the environment, which beats the file, which beats the
// defaults.
func Flags() []cli.Flag {
	env := func(name string) []string {
		return []string{"MESHNET_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))}
	}
	str := func(name, value, usage string, aliases ...string) cli.Flag {
		return altsrc.NewStringFlag(&cli.StringFlag{Name: name, Aliases: aliases, Value: value, Usage: usage, EnvVars: env(name)})
	}
	list := func(name string, value []string, usage string, aliases ...string) cli.Flag {
		f := &cli.StringSliceFlag{Name: name, Aliases: aliases, Usage: usage, EnvVars: env(name)}
		if value != nil {
			f.Value = cli.NewStringSlice(value...)
		}
		return altsrc.NewStringSliceFlag(f)
	}
	boolean := func(name string, value bool, usage string) cli.Flag {
		return altsrc.NewBoolFlag(&cli.BoolFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
	}
	num := func(name string, value int, usage string) cli.Flag {
		return altsrc.NewIntFlag(&cli.IntFlag{Name: name, Value: value, Usage: usage, EnvVars: env(name)})
	}
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML configuration file (default " + DefaultConfigFile + " if present)", EnvVars: env("config")},
		str("node-name", "", "unique name of this host in the cluster (default: the hostname)"),
		str("cluster-store", "embedded", "cluster store: consul://HOST:PORT[/PREFIX], etcd://HOST:PORT[,HOST:PORT…][/PREFIX], zk://HOST:PORT[,HOST:PORT…][/PREFIX] or embedded"),
		list("cluster-store-opt", nil, "cluster store option key=value: ca, cert, key, token, username, password, timeout"),
		str("cluster-advertise", "", "IFACE[:PORT] or IP[:PORT]: this host's VTEP and gossip address (default: first non-loopback interface, port 7946)"),
		str("data-dir", "/var/lib/meshnet", "local state directory"),
		list("host", []string{"unix:///run/meshnet/agent.sock"}, "API listen address (unix:// or tcp:// with TLS)", "H"),
		boolean("tlsverify", false, "serve tcp:// hosts with mutual TLS: clients need a certificate of tlscacert"),
		str("tlscacert", "", "CA whose certificates clients of tcp:// hosts must show (PEM)"),
		str("tlscert", "", "the API's TLS certificate for tcp:// hosts (PEM)"),
		str("tlskey", "", "the key of tlscert (PEM)"),
		str("bridge", "mesh0", "Linux bridge of the default bridge network; none disables it", "b"),
		str("bip", "", "default bridge's gateway address in CIDR form (default: first free of 172.17.0.0/16…172.31.0.0/16)"),
		boolean("icc", true, "allow traffic between sandboxes on the same bridge network"),
		boolean("ip-forward", true, "set net.ipv4.ip_forward=1"),
		boolean("iptables", true, "manage packet-filter and NAT rules (nftables, own table)"),
		num("mtu", 0, "default bridge MTU (default: the underlay MTU)"),
		list("dns", nil, "default DNS server of every sandbox (default: the host's)"),
		list("dns-opt", nil, "default resolver option of every sandbox"),
		list("dns-search", nil, "default DNS search domain of every sandbox"),
		num("vxlan-port", 4789, "VXLAN UDP port"),
		list("default-address-pools", nil, "base=CIDR,size=N[,scope=global|local]: where automatic subnets come from"),
		str("gossip-key", "", "base64 AES key (16, 24 or 32 bytes), the same on every host (default: the cluster store's keyring, made and rotated by the agents)"),
		str("cluster-token", "", "join token of a cluster whose store is another agent's embedded one (agentctl cluster join-token there prints it)"),
		str("cluster-token-file", "", "file holding the join token (instead of cluster-token, which other users can see in /proc)"),
		str("node-reclaim-after", "10m", "how long a node must be gone (from the store's nodes and from gossip) before its address leases are reclaimed"),
		str("docker-plugin", "/run/docker/plugins/meshnet.sock", "socket of the Docker network and IPAM plugin meshnet; empty turns it off"),
		str("docker-host", "unix:///var/run/docker.sock", "the local dockerd, whose meshnet networks the agent keeps equal to the cluster's (unix:// only); empty turns it off"),
		str("docker-dns", "169.254.53.53", "address where the agent answers DNS for Docker's containers (give it to dockerd as its dns); empty turns it off"),
		str("log-level", "info", "debug, info, warn or error"),
		str("log-format", "text", "text or json"),
	}
}

// NewApp returns meshagent's command-line app: Flags, the configuration
// file (LoadFile), and repeated values kept whole, since one
// default-address-pools value has commas of its own
// (--default-address-pools base=10.10.0.0/16,size=24).
func NewApp(action cli.ActionFunc) *cli.App {
	return &cli.App{
		Name:                      "meshagent",
		Usage:                     "the meshnet agent: multi-host overlay networks on a cluster store",
		Flags:                     Flags(),
		Before:                    LoadFile,
		Action:                    action,
		DisableSliceFlagSeparator: true,
	}
}

// LoadFile applies the YAML configuration file to the flags that neither
// the command line nor the environment set. It is meant as the app's
// Before function. A missing default file is fine; a missing named file,
// bad YAML or an unknown key is one clear error.
func LoadFile(c *cli.Context) error {
	path, named := c.String("config"), c.IsSet("config")
	if !named {
		path = DefaultConfigFile
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading configuration file: %w", err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(b, &keys); err != nil {
		if _, ok := err.(*yaml.TypeError); ok {
			return fmt.Errorf("configuration file %s must be a list of key: value lines", path)
		}
		return fmt.Errorf("configuration file %s is not valid YAML: %s", path, oneLine(err.Error()))
	}
	values, err := fileValues(keys)
	if err != nil {
		return fmt.Errorf("configuration file %s: %w", path, err)
	}
	src := altsrc.NewMapInputSource(path, values)
	if err := altsrc.ApplyInputSourceValues(c, src, c.Command.Flags); err != nil {
		// fileValues has checked every type; this is a safety net that
		// still keeps the library's wording away from the user.
		return fmt.Errorf("configuration file %s has a value of the wrong type", path)
	}
	return nil
}

// fileValues checks the file's keys against the flags and converts each
// value into the form the flag's input source reads: a list-valued key
// takes one value or a list, a string key any scalar, a boolean key true
// or false, a number key a whole number. Every mistake is one sentence
// naming the key.
func fileValues(keys map[string]any) (map[any]any, error) {
	kinds := map[string]string{}
	for _, f := range Flags() {
		switch f.(type) {
		case *altsrc.StringSliceFlag:
			kinds[f.Names()[0]] = "list"
		case *altsrc.BoolFlag:
			kinds[f.Names()[0]] = "bool"
		case *altsrc.IntFlag:
			kinds[f.Names()[0]] = "int"
		case *altsrc.StringFlag:
			kinds[f.Names()[0]] = "string"
		}
	}
	out := make(map[any]any, len(keys))
	for k, v := range keys {
		kind, ok := kinds[k]
		if !ok {
			return nil, fmt.Errorf("unknown key %q", k)
		}
		if v == nil {
			continue // "key:" with no value leaves the default
		}
		switch kind {
		case "list":
			items, isList := v.([]any)
			if !isList {
				items = []any{v}
			}
			list := make([]any, 0, len(items))
			for _, it := range items {
				s, ok := scalarString(it)
				if !ok {
					return nil, fmt.Errorf("key %q takes a value or a list of values, not %s", k, describeYAML(it))
				}
				list = append(list, s)
			}
			out[k] = list
		case "string":
			s, ok := scalarString(v)
			if !ok {
				return nil, fmt.Errorf("key %q takes one value, not %s", k, describeYAML(v))
			}
			out[k] = s
		case "bool":
			b, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("key %q takes true or false, not %s", k, describeYAML(v))
			}
			out[k] = b
		case "int":
			n, ok := v.(int)
			if !ok {
				return nil, fmt.Errorf("key %q takes a whole number, not %s", k, describeYAML(v))
			}
			out[k] = n
		}
	}
	return out, nil
}

// scalarString renders a YAML scalar as the string a flag would take.
func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(v), true
	}
	return "", false
}

func describeYAML(v any) string {
	switch v := v.(type) {
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case string:
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprint(v)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ConfigFromCLI validates the flags into a Config. Every error names the
// key and what is wrong with it.
func ConfigFromCLI(c *cli.Context) (Config, error) {
	cfg := Config{
		NodeName:     c.String("node-name"),
		StoreURL:     c.String("cluster-store"),
		DataDir:      c.String("data-dir"),
		Hosts:        c.StringSlice("host"),
		Bridge:       c.String("bridge"),
		ICC:          c.Bool("icc"),
		IPForward:    c.Bool("ip-forward"),
		IPTables:     c.Bool("iptables"),
		MTU:          c.Int("mtu"),
		DNSOpts:      c.StringSlice("dns-opt"),
		DNSSearch:    c.StringSlice("dns-search"),
		VXLANPort:    c.Int("vxlan-port"),
		LogLevel:     c.String("log-level"),
		LogFormat:    c.String("log-format"),
		DockerPlugin: c.String("docker-plugin"),
		DockerHost:   c.String("docker-host"),
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalid %s: "+format, append([]any{key}, args...)...))
	}
	if cfg.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			bad("node-name", "no node name given and the hostname is unknown")
		}
		cfg.NodeName = h
	}
	if strings.ContainsAny(cfg.NodeName, "/ \t\n") {
		bad("node-name", "%q must not contain '/' or spaces", cfg.NodeName)
	}
	store, err := kvstore.ParseURL(cfg.StoreURL, c.StringSlice("cluster-store-opt"))
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Store = store
	if _, err := store.TLSConfig(); err != nil && store.Backend != kvstore.BackendEmbedded {
		errs = append(errs, fmt.Errorf("invalid %w", err))
	}
	cfg.Args = os.Args[1:]
	if path := c.String("config"); c.IsSet("config") {
		cfg.ConfigFile = path
	} else if _, err := os.Stat(DefaultConfigFile); err == nil {
		cfg.ConfigFile = DefaultConfigFile
	}
	if err := cfg.parseAdvertise(c.String("cluster-advertise")); err != nil {
		errs = append(errs, err)
	}
	if cfg.DataDir == "" {
		bad("data-dir", "it is empty")
	}
	if p := cfg.DockerPlugin; p != "" && (!filepath.IsAbs(p) || filepath.Clean(p) != p || strings.HasSuffix(p, "/")) {
		bad("docker-plugin", "%q is not an absolute, clean path of a socket", p)
	}
	if v := c.String("docker-dns"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() {
			bad("docker-dns", "%q is not a unicast IPv4 address (such as 169.254.53.53)", v)
		}
		cfg.DockerDNS = a
	}
	if h := cfg.DockerHost; h != "" {
		if p, ok := strings.CutPrefix(h, "unix://"); !ok || !filepath.IsAbs(p) {
			bad("docker-host", "%q must be unix:// and an absolute path, such as unix:///var/run/docker.sock", h)
		}
	}
	for _, h := range cfg.Hosts {
		if !strings.HasPrefix(h, "unix://") && !strings.HasPrefix(h, "tcp://") {
			bad("host", "%q must start with unix:// or tcp://", h)
		}
	}
	if err := cfg.parseAPITLS(c); err != nil {
		errs = append(errs, err)
	}
	if v := c.String("bip"); v != "" {
		if cfg.BIP, err = netip.ParsePrefix(v); err != nil || !cfg.BIP.Addr().Is4() {
			bad("bip", "%q is not an IPv4 address in CIDR form such as 172.17.0.1/16", v)
		} else if _, err := (ipam.SubnetConfig{Subnet: cfg.BIP.Masked(), Gateway: cfg.BIP.Addr()}).Normalize(); err != nil {
			bad("bip", "%v", err)
		}
	}
	if cfg.MTU != 0 && (cfg.MTU < 1280 || cfg.MTU > 65535) {
		bad("mtu", "%d is outside 1280–65535", cfg.MTU)
	}
	for _, d := range c.StringSlice("dns") {
		a, err := netip.ParseAddr(d)
		if err != nil {
			bad("dns", "%q is not an IP address", d)
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	if d, err := time.ParseDuration(c.String("node-reclaim-after")); err != nil || d < time.Second {
		bad("node-reclaim-after", "%q is not a duration of at least 1s (such as 90s or 10m)", c.String("node-reclaim-after"))
	} else {
		cfg.NodeReclaimAfter = d
	}
	if cfg.VXLANPort < 1 || cfg.VXLANPort > 65535 {
		bad("vxlan-port", "%d is outside 1–65535", cfg.VXLANPort)
	}
	if cfg.GlobalPools, cfg.LocalPools, err = ipam.ParseAddressPools(c.StringSlice("default-address-pools")); err != nil {
		errs = append(errs, fmt.Errorf("invalid default-address-pools: %w", err))
	}
	if k := c.String("gossip-key"); k != "" {
		key, err := base64.StdEncoding.DecodeString(k)
		if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
			bad("gossip-key", "it must be base64 of 16, 24 or 32 bytes")
		}
		cfg.GossipKey = key
	}
	if err := cfg.parseJoinToken(c.String("cluster-token"), c.String("cluster-token-file"), c.StringSlice("cluster-store-opt")); err != nil {
		errs = append(errs, err)
	}
	switch cfg.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q is not debug, info, warn or error", cfg.LogLevel)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		bad("log-format", "%q is not text or json", cfg.LogFormat)
	}
	return cfg, errors.Join(errs...)
}

// parseJoinToken reads the join token, given or in a file, and checks it
// goes with the store: another agent's embedded one, reached as etcd://.
func (cfg *Config) parseJoinToken(token, file string, storeOpts []string) error {
	if cfg.Store.Backend == kvstore.BackendEmbedded {
		for _, o := range storeOpts {
			if k, _, _ := strings.Cut(o, "="); strings.TrimSpace(k) != "timeout" {
				return fmt.Errorf("invalid cluster-store-opt: %q does not apply to the embedded store, which makes its own certificates", o)
			}
		}
	}
	switch {
	case token == "" && file == "":
		return nil
	case token != "" && file != "":
		return errors.New("invalid cluster-token: give cluster-token or cluster-token-file, not both")
	case file != "":
		b, err := readSmallFile(file, 4096)
		if err != nil {
			return fmt.Errorf("invalid cluster-token-file: %w", err)
		}
		token = string(b)
	}
	switch {
	case cfg.Store.Backend == kvstore.BackendEmbedded:
		return errors.New("invalid cluster-token: this host serves the embedded store and needs no token; give it to the other hosts, with cluster-store etcd://THIS-HOST:2379")
	case cfg.Store.Backend != kvstore.BackendEtcd:
		return errors.New("invalid cluster-token: a join token is for etcd://HOST:2379, the embedded store of another agent")
	case cfg.Store.CAFile != "" || cfg.Store.CertFile != "":
		return errors.New("invalid cluster-token: give a join token or the store's ca, cert and key (cluster-store-opt), not both")
	}
	t, err := trust.ParseToken(token)
	if err != nil {
		return fmt.Errorf("invalid cluster-token: %w", err)
	}
	cfg.JoinToken = &t
	return nil
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// parseAdvertise reads IFACE[:PORT] or IP[:PORT]; the interface is
// resolved to its address when the agent starts.
func (cfg *Config) parseAdvertise(v string) error {
	cfg.GossipPort = DefaultGossipPort
	if v == "" {
		return nil
	}
	host, port := v, ""
	if h, p, err := net.SplitHostPort(v); err == nil {
		host, port = h, p
	} else if strings.Count(v, ":") == 1 {
		return fmt.Errorf("invalid cluster-advertise: %q is not IFACE[:PORT] or IP[:PORT]", v)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid cluster-advertise: port %q is outside 1–65535", port)
		}
		cfg.GossipPort = n
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return fmt.Errorf("invalid cluster-advertise: %s is not an address other hosts can reach", a)
		}
		cfg.AdvertiseAddr = a
		return nil
	}
	if host == "" || len(host) > 15 || strings.ContainsAny(host, "/ \t") {
		return fmt.Errorf("invalid cluster-advertise: %q is neither an IP address nor an interface name", host)
	}
	cfg.AdvertiseIface = host
	return nil
}
