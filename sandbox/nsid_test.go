package sandbox

import "testing"

func TestNSIDString(t *testing.T) {
	for id, want := range map[NSID]string{
		{}:                         "none",
		{Dev: 4, Ino: 4026531840}:  "net:[4026531840] dev 0:4",
		{Dev: 259<<8 | 3, Ino: 1}:  "net:[1] dev 259:3",
		{Dev: 0x12300<<12 | 0x45}:  "net:[0] dev 0:74565", // minor 0x12345
		{Dev: 0x1000<<32 | 0x1<<8}: "net:[0] dev 4097:0",  // major 0x1001
	} {
		if got := id.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", id, got, want)
		}
		if id.IsZero() != (want == "none") {
			t.Errorf("%#v.IsZero() = %v", id, id.IsZero())
		}
	}
}
