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
	IP      netip.Addr       // IPv4 address (required)
	IPv6    netip.Addr       // optional IPv6 address
	MAC     net.HardwareAddr // interface MAC: 6 bytes, or empty (derived from IP)
	VTEP    netip.Addr       // underlay address of the host holding the endpoint
	Node    string           // name of the host holding the endpoint
	Sandbox string           // sandbox (netns) name on that host
	Aliases []string         // extra DNS names
}

// maxRecordSize keeps a broadcast inside one memberlist UDP packet together
// with memberlist's own framing (its default UDPBufferSize is 1400).
const maxRecordSize = 1100

// sigRoom stands for the largest signature in a record's size.
var sigRoom = make([]byte, maxSigLen)

// maxNodeNameLen bounds Config.NodeName. A record carries its writer's name
// and usually the same name again as Endpoint.Node, so a long name eats into
// maxRecordSize twice.
const maxNodeNameLen = 255

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

// validate checks that every host can program the endpoint into its
// datapath (the overlay refuses anything else) and that the record, as
// written by writer, fits in one gossip packet.
func (e *Endpoint) validate(writer string) error {
	var errs []error
	if e.Network == "" {
		errs = append(errs, errors.New("network is empty"))
	}
	if e.ID == "" {
		errs = append(errs, errors.New("endpoint ID is empty"))
	}
	switch {
	case !e.IP.IsValid():
		errs = append(errs, errors.New("IPv4 address is missing"))
	case e.IP.Is4In6():
		errs = append(errs, fmt.Errorf("IP %s is IPv4-mapped IPv6; use the IPv4 form", e.IP))
	case !e.IP.Is4():
		errs = append(errs, fmt.Errorf("IP %s is not IPv4", e.IP))
	}
	switch {
	case !e.IPv6.IsValid():
	case e.IPv6.Is4In6():
		errs = append(errs, fmt.Errorf("IPv6 address %s is IPv4-mapped", e.IPv6))
	case !e.IPv6.Is6():
		errs = append(errs, fmt.Errorf("IPv6 address %s is not IPv6", e.IPv6))
	case e.IPv6.Zone() != "":
		errs = append(errs, fmt.Errorf("IPv6 address %s has a zone", e.IPv6))
	}
	if len(e.MAC) != 0 && len(e.MAC) != 6 {
		errs = append(errs, fmt.Errorf("MAC %s is %d bytes, want 6", e.MAC, len(e.MAC)))
	}
	if err := checkVTEP(e.VTEP); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		r := wireRecord{Endpoint: *e, Version: version{LTime: 1 << 62, Writer: writer}, Sig: sigRoom}
		if size := len(appendRecord(nil, &r)); size > maxRecordSize {
			errs = append(errs, fmt.Errorf("record is %d bytes, limit %d", size, maxRecordSize))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid endpoint %s/%s: %w", e.Network, e.ID, err)
	}
	return nil
}

// checkVTEP checks a VXLAN tunnel endpoint: a unicast address in one
// canonical form, so that replicas compare equal and every host can use it.
func checkVTEP(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("VTEP is missing")
	case a.Is4In6():
		return fmt.Errorf("VTEP %s is IPv4-mapped IPv6; use the IPv4 form", a)
	case a.Zone() != "":
		return fmt.Errorf("VTEP %s has a zone", a)
	case a.IsUnspecified() || a.IsMulticast():
		return fmt.Errorf("VTEP %s is not a unicast address", a)
	}
	return nil
}

// checkTombstoneSize checks that a delete of (network, id) written by writer
// fits in one gossip packet.
func checkTombstoneSize(network, id, writer string) error {
	r := wireRecord{Deleted: true, Residual: 1 << 62,
		Version:  version{LTime: 1 << 62, Writer: writer},
		Endpoint: Endpoint{Network: network, ID: id}, Sig: sigRoom}
	if size := len(appendRecord(nil, &r)); size > maxRecordSize {
		return fmt.Errorf("delete record is %d bytes, limit %d", size, maxRecordSize)
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
