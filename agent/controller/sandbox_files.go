package controller

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/meshnet/meshnet/agent/api"
	"github.com/meshnet/meshnet/sandbox"
)

// writeFiles writes /etc/netns/NAME/{hostname,hosts,resolv.conf} of a
// named sandbox (and of the sandboxes sharing its namespace, which show
// its), from its records as they are now.
func (t *sandboxSteps) writeFiles(sandboxID string) error {
	s := t.recs.Sandbox(sandboxID)
	if s == nil || s.External || s.HostNet { // the host's own /etc serves a host sandbox
		return nil
	}
	owner := t.recs.Owner(s)
	f := sandbox.Files{Hostname: s.Hostname}
	names := []string{s.Hostname}
	if s.Name.String() != s.Hostname {
		names = append(names, s.Name.String())
	}
	joined := t.recs.Joined(owner.ID)
	for _, e := range joined {
		f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr.Addr(), Names: append(slices.Clone(names), e.Aliases...)})
		if e.Addr6.IsValid() {
			f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: e.Addr6.Addr(), Names: slices.Clone(names)})
		}
	}
	for _, e := range joined {
		for _, l := range e.Links { // ALIAS and NAME of a linked sandbox
			name, alias, _ := strings.Cut(l, ":")
			if target, err := t.recs.LinkTarget(name, e.NetworkID); err == nil {
				f.Hosts = append(f.Hosts, sandbox.HostEntry{IP: target.Addr.Addr(), Names: slices.Compact([]string{alias, name})})
			}
		}
	}
	f.ResolvConf = resolvConf(t.dp.ResolverSettings(owner))
	if err := t.ns.WriteFiles(s.Name, f); err != nil {
		return fmt.Errorf("writing the sandbox's /etc files: %w", err)
	}
	var errs []error
	for _, o := range t.recs.Sharers(s.ID) { // they show the owner's
		errs = append(errs, t.writeFiles(o.ID))
	}
	return errors.Join(errs...)
}

// resolvConf renders a resolv.conf.
func resolvConf(c api.DNSConfig) []byte {
	var b strings.Builder
	b.WriteString("# written by meshagent\n")
	for _, d := range c.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	if len(c.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(c.Search, " "))
	}
	if len(c.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(c.Options, " "))
	}
	return []byte(b.String())
}
