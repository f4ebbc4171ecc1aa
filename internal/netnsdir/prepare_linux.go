package netnsdir

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// mu serialises Prepare within the process and lockFile between
// processes (an agent and a test, two test binaries), so that concurrent
// calls do not stack bind mounts of Dir onto itself: a second bind made
// after another process mounted a namespace file hides that file, which
// then can be neither unmounted nor removed.
var mu sync.Mutex

const lockFile = "/run/meshnet-netns.lock"

// Prepare makes Dir a mount point with shared propagation, so that
// unmounting a namespace file in one mount namespace unmounts it in every
// peer and lets the namespace be freed.
// Equivalent to: `mount --make-rshared /run/netns`, after
// `mount --rbind /run/netns /run/netns` if it is not a mount point yet.
func Prepare() error {
	mu.Lock()
	defer mu.Unlock()
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", Dir, err)
	}
	lock, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("opening %s: %w", lockFile, err)
	}
	defer lock.Close() // releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lockFile, err)
	}
	err = unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		if err != nil {
			return fmt.Errorf("making %s a shared mount: %w", Dir, err)
		}
		return nil
	}
	if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s onto itself: %w", Dir, err)
	}
	if err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making %s a shared mount: %w", Dir, err)
	}
	return nil
}
