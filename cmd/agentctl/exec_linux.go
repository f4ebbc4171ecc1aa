package main

// Running a command in a sandbox, the way `ip netns exec NAME CMD` does:
// enter the network namespace, make a private mount namespace in which
// /sys shows that network namespace and the files of /etc/netns/NAME are
// bind-mounted over their /etc namesakes, then exec CMD.
//
// Namespaces belong to threads, and the Go runtime moves goroutines among
// threads, so agentctl does this in a fresh copy of itself (argv[1] is
// execHelperCommand) that locks its one goroutine to its thread, sets up
// the namespaces there and execs CMD from that thread. The parent waits
// and returns CMD's exit status.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runInSandbox runs argv in the network namespace at netnsPath with the
// files of etcDir over /etc, and returns its exit status (128+N when killed
// by signal N).
func runInSandbox(netnsPath, etcDir string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := exec.Command("/proc/self/exe", append([]string{execHelperCommand, netnsPath, etcDir, "--"}, argv...)...)
	cmd.Args[0] = "agentctl"
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr

	// The terminal's SIGINT and SIGQUIT reach CMD by themselves (same
	// process group); agentctl outlives CMD to report its status and, for
	// run --rm, to clean up. SIGTERM and SIGHUP sent to agentctl are
	// passed on to CMD.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the sandbox exec helper: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGTERM || s == syscall.SIGHUP {
					_ = cmd.Process.Signal(s)
				}
			case <-done:
				return
			}
		}
	})
	err := cmd.Wait()
	close(done)
	wg.Wait()

	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("running %s in the sandbox: %w", argv[0], err)
	}
	return 0, nil
}

// execHelper is agentctl run as
//
//	agentctl __exec-in-sandbox NETNS-PATH ETC-DIR -- CMD [ARG...]
//
// It enters the sandbox and execs CMD; it returns only on failure, with
// the exit status to leave with (Docker's: 125 could not enter, 126 CMD
// cannot be run, 127 CMD not found), having printed why.
func execHelper(args []string, stderr io.Writer) int {
	fail := func(status int, err error) int {
		fmt.Fprintf(stderr, "agentctl: %s\n", oneLine(err.Error()))
		return status
	}
	if len(args) < 4 || args[2] != "--" {
		return fail(statusAgentctl, fmt.Errorf("usage: agentctl %s NETNS-PATH ETC-DIR -- CMD [ARG...]", execHelperCommand))
	}
	netnsPath, dir, argv := args[0], args[1], args[3:]

	runtime.LockOSThread() // for good: this thread execs CMD
	if err := enterSandbox(netnsPath, dir); err != nil {
		return fail(statusAgentctl, err)
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return fail(statusNotFound, err)
		}
		return fail(statusCannotExecute, err)
	}
	err = unix.Exec(path, argv, os.Environ())
	return fail(statusCannotExecute, fmt.Errorf("exec %s: %w", argv[0], err))
}

// enterSandbox moves the calling thread, which must be locked, into the
// network namespace at netnsPath and into a new mount namespace set up as
// ip netns exec sets it up.
func enterSandbox(netnsPath, dir string) error {
	ns, err := netns.GetFromPath(netnsPath)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", netnsPath, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return fmt.Errorf("entering network namespace %s: %w", netnsPath, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("creating a mount namespace: %w", err)
	}
	// Mounts made here must not leak back to the host's namespace.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	// A sysfs mounted now describes the sandbox's network namespace
	// (/sys/class/net). Best effort: where sysfs cannot be mounted, such
	// as in some containers, CMD sees the host's.
	_ = unix.Mount("sysfs", "/sys", "sysfs", 0, "")
	return bindEtc(dir)
}

// bindEtc bind-mounts each file of dir over the file of the same name in
// /etc, where that one exists.
func bindEtc(dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if _, err := os.Stat(dst); err != nil {
			continue
		}
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind-mounting %s over %s: %w", src, dst, err)
		}
	}
	return nil
}
