package sandbox

import "fmt"

// NSID is the identity of a namespace: the device and inode numbers of its
// nsfs file (`stat -L /proc/PID/ns/net`, `ls -iL`). Two paths lead to the
// same namespace exactly when they have the same NSID, and a namespace's
// NSID is not reused while the namespace lives.
type NSID struct {
	Dev, Ino uint64
}

// IsZero reports the zero NSID, which identifies no namespace.
func (id NSID) IsZero() bool { return id == NSID{} }

// String formats id as the kernel names a network namespace, followed by
// the device of nsfs: "net:[4026532281] dev 0:4"; the zero NSID is "none".
func (id NSID) String() string {
	if id.IsZero() {
		return "none"
	}
	// major(3) and minor(3) of glibc.
	major := id.Dev&0x00000000000fff00>>8 | id.Dev&0xfffff00000000000>>32
	minor := id.Dev&0x00000000000000ff | id.Dev&0x00000ffffff00000>>12
	return fmt.Sprintf("net:[%d] dev %d:%d", id.Ino, major, minor)
}
