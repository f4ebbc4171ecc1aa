package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/meshnet/meshnet/internal/names"
	"github.com/meshnet/meshnet/internal/netnsdir"
)

const (
	// RunDir holds the named network namespaces, one file per sandbox.
	RunDir = netnsdir.Dir
	// EtcDir holds one directory of resolver files per sandbox.
	EtcDir = "/etc/netns"
)

// MaxNameLen is the longest sandbox name ParseName accepts.
const MaxNameLen = 64

var (
	// ErrInvalidName is wrapped by the errors of ParseName.
	ErrInvalidName = errors.New("invalid sandbox name")
	// ErrExists is wrapped by Create when the namespace file already exists.
	ErrExists = errors.New("already exists")
	// ErrNotNetNS is wrapped by Identify when a path is not a network
	// namespace.
	ErrNotNetNS = errors.New("not a network namespace")
)

// Name is a sandbox's name, valid by construction (ParseName): 1 to 64
// ASCII letters, digits, '_', '.' and '-', starting with a letter or digit.
// Such a name is accepted by `ip netns` and is a safe file name in RunDir
// and EtcDir (never "." or "..", never a path). The zero Name names
// nothing; the functions of this package refuse it.
type Name struct{ s string }

// ParseName checks name and returns it as a Name. The error wraps
// ErrInvalidName and says what is wrong.
func ParseName(name string) (Name, error) {
	switch {
	case len(name) > MaxNameLen:
		return Name{}, fmt.Errorf("%w %q: it is longer than %d characters", ErrInvalidName, name, MaxNameLen)
	case !names.Valid(name, MaxNameLen):
		return Name{}, fmt.Errorf("%w %q: %s", ErrInvalidName, name, names.FirstBad(name))
	}
	return Name{name}, nil
}

// String returns the name.
func (n Name) String() string { return n.s }

// IsZero reports the zero Name.
func (n Name) IsZero() bool { return n.s == "" }

// MarshalText writes the name.
func (n Name) MarshalText() ([]byte, error) { return []byte(n.s), nil }

// UnmarshalText reads a name, checking it; an empty text is the zero Name.
func (n *Name) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*n = Name{}
		return nil
	}
	v, err := ParseName(string(b))
	if err != nil {
		return err
	}
	*n = v
	return nil
}

// check refuses the zero Name.
func (n Name) check() error {
	if n.IsZero() {
		return fmt.Errorf("%w: no name given", ErrInvalidName)
	}
	return nil
}

// Path returns the namespace file of the sandbox, RunDir/NAME.
func Path(name Name) string { return filepath.Join(RunDir, name.s) }

// etcPath returns the resolver-file directory of the sandbox.
func etcPath(name Name) string { return filepath.Join(EtcDir, name.s) }
