package firewall

import (
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DNSTable is the table, in a sandbox's namespace, that sends its
// questions to the embedded DNS server's sockets (family ip).
const DNSTable = "meshnet-dns"

// RedirectDNS makes, in the namespace ns, addr:53 lead to addr:udpPort
// (UDP) and addr:tcpPort (TCP): the embedded DNS server's sockets, on
// ports the kernel picked, so that the sandbox's own processes may serve
// port 53 themselves. It replaces the table a previous call made.
// Equivalent to:
//
//	table ip meshnet-dns {
//		chain output {
//			type nat hook output priority -100; policy accept;
//			ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:UDPPORT
//			ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:TCPPORT
//		}
//	}
func RedirectDNS(ns netns.NsHandle, addr netip.Addr, udpPort, tcpPort int) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	if exists, err := hasTable(c, nftables.TableFamilyIPv4, DNSTable); err != nil {
		return err
	} else if exists {
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: DNSTable})
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: DNSTable})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	for _, r := range []struct {
		proto byte
		port  int
		name  string
	}{{unix.IPPROTO_UDP, udpPort, "udp"}, {unix.IPPROTO_TCP, tcpPort, "tcp"}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr.AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{r.proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
			&expr.Immediate{Register: 1, Data: addr.AsSlice()},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(uint16(r.port))},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}, UserData: userdata.AppendString(nil, userdata.TypeComment, "DNS over "+r.name+" to the agent")})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("writing table ip %s: %w", DNSTable, err)
	}
	return nil
}

// UnredirectDNS deletes the redirect of RedirectDNS from ns, if any.
func UnredirectDNS(ns netns.NsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return fmt.Errorf("opening nftables: %w", err)
	}
	if exists, err := hasTable(c, nftables.TableFamilyIPv4, DNSTable); err != nil || !exists {
		return err
	}
	c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: DNSTable})
	return c.Flush()
}

func hasTable(c *nftables.Conn, family nftables.TableFamily, name string) (bool, error) {
	tables, err := c.ListTablesOfFamily(family)
	if err != nil {
		return false, fmt.Errorf("listing nftables tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == name {
			return true, nil
		}
	}
	return false, nil
}
