package gossip

// Wire format.
//
// Records travel in two kinds of payloads: a gossip message (memberlist user
// message inside a UDP packet, fast path) and a full-state snapshot
// (memberlist push/pull over TCP, repair path). Each queued broadcast is one
// encoded record; at send time all the records that fit in the packet are
// packed into a single message, so a receiver's memberlist handler queue
// sees one entry per packet instead of one per record (bursts of updates
// overflowed it at 100 nodes). Both use the same
// hand-rolled binary record encoding: varint lengths, raw address bytes, no
// field names. A typical overlay endpoint (64-hex-char network and endpoint
// IDs, IPv4, MAC, VTEP, short names) encodes in about 190 bytes, roughly half
// of its JSON form, which matters because the push/pull snapshot carries every
// record of the cluster.
//
//	message   := (msgRecords | msgDirect) uvarint(count) record*
//	state     := stateVersion uvarint(clock) uvarint(count) record*
//	record    := flags uvarint(ltime) str(writer) str(network) str(id)
//	             ( uvarint(residualTTLms)                    if flags&flagDeleted
//	             | str(name) addr(ip) addr(ipv6) bytes(mac)
//	               addr(vtep) str(node) str(sandbox)
//	               uvarint(n) str(alias)*n )                 otherwise
//	             [ bytes(signature) ]                        if flags&flagSigned
//	str, bytes, addr := uvarint(len) raw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	// msgRecords tags a gossip message carrying records: the receiver
	// passes on what is news to it (the epidemic step). The first byte
	// leaves room for other message kinds (network-interest announcements).
	msgRecords byte = 1
	// msgDirect tags records sent by their writer straight to every
	// member (fanout.go): the receiver merges them and passes nothing on,
	// since everybody got the same message.
	msgDirect byte = 2
	// stateVersion tags a push/pull snapshot.
	stateVersion byte = 1

	flagDeleted byte = 1 << 0
	flagSigned  byte = 1 << 1 // sign.go

	// maxFieldLen bounds any single length prefix so a corrupt or hostile
	// payload cannot make the decoder allocate unbounded memory.
	maxFieldLen = 64 << 10
)

var errShortBuffer = errors.New("truncated message")

// wireRecord is a record as it travels: the version, and either the endpoint
// or, for a tombstone, how long the tombstone still has to live.
type wireRecord struct {
	Version  version
	Deleted  bool
	Residual time.Duration // tombstones only
	Endpoint Endpoint      // Network and ID always set; the rest for live records
	Sig      []byte        // the writer's signature (sign.go), if any
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() {
		return append(b, 0)
	}
	return appendBytes(b, a.AsSlice())
}

func appendRecord(b []byte, r *wireRecord) []byte {
	var flags byte
	if r.Deleted {
		flags |= flagDeleted
	}
	if len(r.Sig) > 0 {
		flags |= flagSigned
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, r.Version.LTime)
	b = appendString(b, r.Version.Writer)
	b = appendString(b, r.Endpoint.Network)
	b = appendString(b, r.Endpoint.ID)
	if r.Deleted {
		ms := r.Residual.Milliseconds()
		if ms < 0 {
			ms = 0
		}
		return appendSig(binary.AppendUvarint(b, uint64(ms)), r.Sig)
	}
	ep := &r.Endpoint
	b = appendString(b, ep.Name)
	b = appendAddr(b, ep.IP)
	b = appendAddr(b, ep.IPv6)
	b = appendBytes(b, ep.MAC)
	b = appendAddr(b, ep.VTEP)
	b = appendString(b, ep.Node)
	b = appendString(b, ep.Sandbox)
	b = binary.AppendUvarint(b, uint64(len(ep.Aliases)))
	for _, a := range ep.Aliases {
		b = appendString(b, a)
	}
	return appendSig(b, r.Sig)
}

func appendSig(b, sig []byte) []byte {
	if len(sig) == 0 {
		return b
	}
	return appendBytes(b, sig)
}

// decoder reads the primitives above from a buffer, remembering the first
// error so call sites can read a whole record and check once.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.buf) < 1 {
		d.fail(errShortBuffer)
		return 0
	}
	c := d.buf[0]
	d.buf = d.buf[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.fail(errShortBuffer)
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxFieldLen || n > uint64(len(d.buf)) {
		d.fail(errShortBuffer)
		return nil
	}
	p := d.buf[:n:n]
	d.buf = d.buf[n:]
	return p
}

func (d *decoder) string() string { return string(d.raw()) }

func (d *decoder) addr() netip.Addr {
	p := d.raw()
	if len(p) == 0 {
		return netip.Addr{}
	}
	a, ok := netip.AddrFromSlice(p)
	if !ok {
		d.fail(fmt.Errorf("bad address length %d", len(p)))
	}
	return a
}

func (d *decoder) record() wireRecord {
	var r wireRecord
	flags := d.byte()
	r.Deleted = flags&flagDeleted != 0
	r.Version.LTime = d.uvarint()
	r.Version.Writer = d.string()
	r.Endpoint.Network = d.string()
	r.Endpoint.ID = d.string()
	if r.Deleted {
		r.Residual = time.Duration(d.uvarint()) * time.Millisecond
		d.sig(&r, flags)
		return r
	}
	ep := &r.Endpoint
	ep.Name = d.string()
	ep.IP = d.addr()
	ep.IPv6 = d.addr()
	if mac := d.raw(); len(mac) > 0 {
		ep.MAC = net.HardwareAddr(append([]byte(nil), mac...))
	}
	ep.VTEP = d.addr()
	ep.Node = d.string()
	ep.Sandbox = d.string()
	n := d.uvarint()
	if n > uint64(len(d.buf)) { // every alias takes at least one byte
		d.fail(errShortBuffer)
		return r
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		ep.Aliases = append(ep.Aliases, d.string())
	}
	d.sig(&r, flags)
	return r
}

// sig reads a record's signature if flags say it has one.
func (d *decoder) sig(r *wireRecord, flags byte) {
	if flags&flagSigned == 0 {
		return
	}
	if sig := d.raw(); len(sig) == 0 || len(sig) > maxSigLen {
		d.fail(fmt.Errorf("a signature of %d bytes", len(sig)))
	} else {
		r.Sig = append([]byte(nil), sig...)
	}
}

// encodeRecord returns one record as queued for broadcast.
func encodeRecord(r *wireRecord) []byte { return appendRecord(nil, r) }

// messageHeaderMax bounds the bytes packRecords adds to the records.
const messageHeaderMax = 1 + binary.MaxVarintLen16

// packRecords builds one gossip message from encoded records.
func packRecords(recs [][]byte) []byte { return packMessage(msgRecords, recs) }

// packMessage builds a message of kind from encoded records.
func packMessage(kind byte, recs [][]byte) []byte {
	size := messageHeaderMax
	for _, r := range recs {
		size += len(r)
	}
	b := make([]byte, 0, size)
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = append(b, r...)
	}
	return b
}

// decodeMessage parses a gossip message; it copies what it keeps, so buf
// may be reused by the caller afterwards.
func decodeMessage(buf []byte) ([]wireRecord, error) {
	_, recs, err := decodeKind(buf)
	return recs, err
}

// decodeKind is decodeMessage that also returns the message's kind.
func decodeKind(buf []byte) (kind byte, recs []wireRecord, err error) {
	d := decoder{buf: buf}
	if kind = d.byte(); d.err == nil && kind != msgRecords && kind != msgDirect {
		return 0, nil, fmt.Errorf("unknown message type %d", kind)
	}
	n := d.uvarint()
	if n > uint64(len(d.buf)) { // every record takes at least one byte
		d.fail(errShortBuffer)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		recs = append(recs, d.record())
	}
	if d.err == nil && len(d.buf) != 0 {
		d.fail(fmt.Errorf("%d trailing bytes", len(d.buf)))
	}
	if d.err != nil {
		return 0, nil, fmt.Errorf("decoding message: %w", d.err)
	}
	return kind, recs, nil
}

// encodeState returns a push/pull snapshot.
func encodeState(clock uint64, recs []wireRecord) []byte {
	b := make([]byte, 0, 16+len(recs)*160)
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, clock)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for i := range recs {
		b = appendRecord(b, &recs[i])
	}
	return b
}

// decodeState parses a push/pull snapshot.
func decodeState(buf []byte) (clock uint64, recs []wireRecord, err error) {
	d := decoder{buf: buf}
	if v := d.byte(); d.err == nil && v != stateVersion {
		return 0, nil, fmt.Errorf("unknown state version %d", v)
	}
	clock = d.uvarint()
	n := d.uvarint()
	switch {
	case n > maxEntries:
		d.fail(fmt.Errorf("a state of %d records, more than a table holds (%d)", n, maxEntries))
	case n > uint64(len(d.buf)): // every record takes at least one byte
		d.fail(errShortBuffer)
	}
	if d.err == nil {
		// Grown as records decode: a claimed count allocates nothing.
		recs = make([]wireRecord, 0, min(n, 256))
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		recs = append(recs, d.record())
	}
	if d.err != nil {
		return 0, nil, fmt.Errorf("decoding state: %w", d.err)
	}
	return clock, recs, nil
}

// Node metadata: metaVersion addr(vtep) bytes(certificate) str(version).
// memberlist limits it to 512 bytes: the version, only informative, is
// cut to what the certificate leaves.
const metaVersion byte = 2

// nodeMeta is what a node publishes about itself.
type nodeMeta struct {
	VTEP    netip.Addr
	Cert    []byte // DER, with an Identity (sign.go)
	Version string
}

func encodeMeta(m nodeMeta) ([]byte, error) {
	b := []byte{metaVersion}
	b = appendAddr(b, m.VTEP)
	b = appendBytes(b, m.Cert)
	room := memberlist.MetaMaxSize - len(b) - binary.MaxVarintLen16
	if room < 0 {
		return nil, fmt.Errorf("node metadata (VTEP and a certificate of %d bytes) is %d bytes, limit %d: use a shorter node name",
			len(m.Cert), len(b), memberlist.MetaMaxSize)
	}
	return appendString(b, m.Version[:min(len(m.Version), room)]), nil
}

func decodeMeta(buf []byte) nodeMeta {
	d := decoder{buf: buf}
	if d.byte() != metaVersion {
		return nodeMeta{}
	}
	var m nodeMeta
	m.VTEP = d.addr()
	m.Cert = d.raw()
	m.Version = d.string()
	if d.err != nil {
		return nodeMeta{}
	}
	return m
}
