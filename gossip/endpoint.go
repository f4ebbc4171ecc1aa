package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Endpoint is one interface on an overlay network, as every host needs to
// know it to program its datapath (FDB: MAC → VTEP, neighbour: IP → MAC) and
// its resolver (Name, Aliases → IP). (Network, ID) identifies it.
type Endpoint struct {
	Network string           // network ID
	ID      string           // endpoint ID, unique within Network
	Name    string           // endpoint name (DNS)
	IP      netip.Addr       // IPv4 address (or the only address)
	IPv6    netip.Addr       // optional second address
	MAC     net.HardwareAddr // interface MAC
	VTEP    netip.Addr       // underlay address of the host holding the endpoint
	Node    string           // name of the host holding the endpoint
	Sandbox string           // sandbox (netns) name on that host
	Aliases []string         // extra DNS names
}

// maxRecordSize keeps a broadcast inside one memberlist UDP packet together
// with memberlist's own framing (its default UDPBufferSize is 1400).
const maxRecordSize = 1100

// Key returns the record key of the endpoint.
func (e *Endpoint) key() key { return key{Network: e.Network, ID: e.ID} }

// Equal reports whether two endpoints carry the same information.
func (e *Endpoint) Equal(o *Endpoint) bool {
	return e.Network == o.Network && e.ID == o.ID && e.Name == o.Name &&
		e.IP == o.IP && e.IPv6 == o.IPv6 && bytes.Equal(e.MAC, o.MAC) &&
		e.VTEP == o.VTEP && e.Node == o.Node && e.Sandbox == o.Sandbox &&
		slices.Equal(e.Aliases, o.Aliases)
}

// clone returns a deep copy, so callers never share slices with the table.
func (e Endpoint) clone() Endpoint {
	e.MAC = slices.Clone(e.MAC)
	e.Aliases = slices.Clone(e.Aliases)
	return e
}

func (e *Endpoint) validate() error {
	var errs []error
	if e.Network == "" {
		errs = append(errs, errors.New("network is empty"))
	}
	if e.ID == "" {
		errs = append(errs, errors.New("endpoint ID is empty"))
	}
	if len(e.MAC) != 0 && len(e.MAC) != 6 && len(e.MAC) != 8 && len(e.MAC) != 20 {
		errs = append(errs, fmt.Errorf("bad MAC length %d", len(e.MAC)))
	}
	if len(errs) == 0 {
		size := len(appendRecord(nil, &wireRecord{Endpoint: *e, Version: version{LTime: 1 << 62}}))
		if size > maxRecordSize {
			errs = append(errs, fmt.Errorf("record is %d bytes, limit %d", size, maxRecordSize))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid endpoint %s/%s: %w", e.Network, e.ID, err)
	}
	return nil
}

type key struct {
	Network string
	ID      string
}

// version orders the writes of one key: Lamport time first, then the name of
// the writing node, so two nodes that write the same key at the same Lamport
// time resolve the conflict the same way everywhere.
type version struct {
	LTime  uint64
	Writer string
}

// newer reports whether v supersedes o.
func (v version) newer(o version) bool {
	if v.LTime != o.LTime {
		return v.LTime > o.LTime
	}
	return v.Writer > o.Writer
}

// EventKind says what happened to an endpoint.
type EventKind int

const (
	// EventSnapshot is always the first event of a subscription: the whole
	// network as it is at subscription time, in Snapshot.
	EventSnapshot EventKind = iota
	// EventAdd: an endpoint appeared.
	EventAdd
	// EventUpdate: an endpoint's information changed.
	EventUpdate
	// EventDelete: an endpoint was deleted, or its owner left or failed.
	// Endpoint holds the last known information.
	EventDelete
)

func (k EventKind) String() string {
	switch k {
	case EventSnapshot:
		return "snapshot"
	case EventAdd:
		return "add"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change of a network's endpoint set.
type Event struct {
	Kind     EventKind
	Network  string
	Endpoint Endpoint   // Add, Update, Delete
	Snapshot []Endpoint // Snapshot, sorted by ID
}
