package firewall

// Rules are compared by what they do, not by their comments: a rule's
// expressions, as the kernel lists them, against the ones meshnet would
// write. The kernel lists a 32-bit register that starts a 128-bit one
// under the 128-bit number (8 as 1, 12 as 2, …) and fills a NAT range's
// unset upper registers with the lower ones; both sides are put in that
// form before they are compared.

import (
	"encoding/hex"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// canonReg is a register number as the kernel lists it.
func canonReg(r uint32) uint32 {
	if r >= 8 && r <= 23 && (r-8)%4 == 0 {
		return (r-8)/4 + 1
	}
	return r
}

// canonical returns e in the kernel's form (a copy when it differs).
func canonical(e expr.Any) expr.Any {
	switch x := e.(type) {
	case *expr.Meta:
		y := *x
		y.Register = canonReg(y.Register)
		return &y
	case *expr.Payload:
		y := *x
		y.DestRegister, y.SourceRegister = canonReg(y.DestRegister), canonReg(y.SourceRegister)
		return &y
	case *expr.Cmp:
		y := *x
		y.Register = canonReg(y.Register)
		return &y
	case *expr.Bitwise:
		y := *x
		y.SourceRegister, y.DestRegister = canonReg(y.SourceRegister), canonReg(y.DestRegister)
		return &y
	case *expr.Lookup:
		y := *x
		y.SourceRegister, y.DestRegister, y.SetID = canonReg(y.SourceRegister), canonReg(y.DestRegister), 0
		return &y
	case *expr.Ct:
		y := *x
		y.Register = canonReg(y.Register)
		return &y
	case *expr.Fib:
		y := *x
		y.Register = canonReg(y.Register)
		return &y
	case *expr.Immediate:
		y := *x
		y.Register = canonReg(y.Register)
		return &y
	case *expr.NAT:
		y := *x
		y.RegAddrMin, y.RegAddrMax = canonReg(y.RegAddrMin), canonReg(y.RegAddrMax)
		y.RegProtoMin, y.RegProtoMax = canonReg(y.RegProtoMin), canonReg(y.RegProtoMax)
		if y.RegAddrMax == 0 {
			y.RegAddrMax = y.RegAddrMin
		}
		if y.RegProtoMax == 0 {
			y.RegProtoMax = y.RegProtoMin
		}
		return &y
	}
	return e
}

// ruleCode renders a rule's expressions for comparison: each one's
// netlink encoding in the canonical form, in hex.
func ruleCode(family nftables.TableFamily, exprs []expr.Any) string {
	var b []byte
	for _, e := range exprs {
		enc, err := expr.Marshal(byte(family), canonical(e))
		if err != nil {
			enc = []byte("unencodable " + err.Error())
		}
		b = append(b, enc...)
		b = append(b, '|')
	}
	return hex.EncodeToString(b)
}
