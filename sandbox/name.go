package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/meshnet/meshnet/internal/netnsdir"
)

const (
	// RunDir holds the named network namespaces, one file per sandbox.
	RunDir = netnsdir.Dir
	// EtcDir holds one directory of resolver files per sandbox.
	EtcDir = "/etc/netns"
)

// MaxNameLen is the longest sandbox name ValidName accepts.
const MaxNameLen = 64

var (
	// ErrInvalidName is wrapped by the errors of ValidName.
	ErrInvalidName = errors.New("invalid sandbox name")
	// ErrExists is wrapped by Create when the namespace file already exists.
	ErrExists = errors.New("already exists")
	// ErrNotNetNS is wrapped by Identify when a path is not a network
	// namespace.
	ErrNotNetNS = errors.New("not a network namespace")
)

// ValidName checks that name is usable as a sandbox name: 1 to 64 ASCII
// letters, digits, '_', '.' and '-', starting with a letter or digit. Such a
// name is accepted by `ip netns` and is a safe file name in RunDir and
// EtcDir (never "." or "..", never a path). The error wraps ErrInvalidName.
func ValidName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: it must not be empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w %q: it is longer than %d characters", ErrInvalidName, name, MaxNameLen)
	case !isAlnum(name[0]):
		return fmt.Errorf("%w %q: it must start with a letter or digit", ErrInvalidName, name)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' {
			return fmt.Errorf("%w %q: only letters, digits, '_', '.' and '-' are allowed", ErrInvalidName, name)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// Path returns the namespace file of the sandbox name, RunDir/NAME. It does
// not check the name.
func Path(name string) string { return filepath.Join(RunDir, name) }

// etcPath returns the resolver-file directory of the sandbox name.
func etcPath(name string) string { return filepath.Join(EtcDir, name) }
