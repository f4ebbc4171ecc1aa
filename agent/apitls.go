package agent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshnet/meshnet/internal/mtls"
)

// parseAPITLS checks the API addresses against tlsverify, tlscacert,
// tlscert and tlskey: tcp:// is served only with mutual TLS, as dockerd
// does with --tlsverify, and never in clear. The files are loaded now, so
// that a wrong one is refused at start, by name.
func (cfg *Config) parseAPITLS(c *cli.Context) error {
	var tcp []string
	for _, h := range cfg.Hosts {
		if hp, ok := strings.CutPrefix(h, "tcp://"); ok {
			host, port, err := net.SplitHostPort(hp)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				return fmt.Errorf("invalid host: %q is not tcp://HOST:PORT", h)
			}
			tcp = append(tcp, h)
		}
	}
	verify := c.Bool("tlsverify")
	switch {
	case len(tcp) > 0 && !verify:
		return fmt.Errorf("invalid host: %s is served only with mutual TLS: set tlsverify, tlscacert, tlscert and tlskey", tcp[0])
	case !verify:
		if c.String("tlscacert") != "" || c.String("tlscert") != "" || c.String("tlskey") != "" {
			return errors.New("invalid tlsverify: tlscacert, tlscert and tlskey are given but tlsverify is not set")
		}
		return nil
	case len(tcp) == 0:
		return errors.New("invalid tlsverify: it applies to tcp:// hosts and no host is tcp://")
	}
	t, err := mtls.Files{CA: c.String("tlscacert"), Cert: c.String("tlscert"), Key: c.String("tlskey")}.Server()
	if err != nil {
		return fmt.Errorf("invalid tlsverify: %w", err)
	}
	cfg.APITLS = t
	return nil
}
