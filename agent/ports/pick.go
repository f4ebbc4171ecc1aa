package ports

import (
	"errors"
	"fmt"
)

// ErrUnavailable is wrapped by the error of a host port that cannot be
// had: published already, or bound by a process.
var ErrUnavailable = errors.New("host port unavailable")

// Pick gives every mapping a host port: checks the ones asked for, and
// picks for the others (HostPort 0: from lo..hi, the host's ephemeral
// range; a range: from it) the lowest that no published mapping holds and
// that usable says is free. published are the mappings already in force;
// usable tries a port on the host (binding it, say). ms is changed only
// when every mapping got its port.
func Pick(ms []Mapping, published []Mapping, usable func(Mapping) error, lo, hi uint16) error {
	taken := append([]Mapping(nil), published...)
	picked := make([]Mapping, len(ms))
	for i, m := range ms {
		first, last, chosen := m.HostPort, m.HostPortEnd, m.HostPort != 0 && m.HostPortEnd == 0
		if m.HostPort == 0 {
			first, last = lo, hi
		}
		var err error
		for p := first; ; p++ {
			c := m
			c.HostPort, c.HostPortEnd = p, 0
			if err = free(c, taken, usable); err == nil {
				picked[i] = c
				taken = append(taken, c)
				break
			}
			if chosen || p == last {
				break
			}
		}
		if err != nil {
			if !chosen {
				return &portError{kind: ErrUnavailable, msg: fmt.Sprintf("no free host port for %d/%s in %d-%d", m.Port, m.Proto, first, last)}
			}
			return err
		}
	}
	copy(ms, picked)
	return nil
}

func free(m Mapping, taken []Mapping, usable func(Mapping) error) error {
	for _, t := range taken {
		if t.Conflicts(m) {
			return &portError{kind: ErrUnavailable, msg: fmt.Sprintf("host port %s is already published", m.hostString())}
		}
	}
	if err := usable(m); err != nil {
		return &portError{kind: ErrUnavailable, msg: fmt.Sprintf("host port %s is in use on this host", m.hostString())}
	}
	return nil
}

// hostString renders the host side: "0.0.0.0:8080/tcp".
func (m Mapping) hostString() string {
	ip := "0.0.0.0"
	if m.HostIP.IsValid() {
		ip = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d/%s", ip, m.HostPort, m.Proto)
}
