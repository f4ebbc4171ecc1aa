package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/meshnet/meshnet/testenv/nshost"
)

// ProcessOptions say how a child process is started.
type ProcessOptions struct {
	// Log receives the process's stdout and stderr (appended); required.
	Log string
	// NS is the network namespace the process runs in; nil means the
	// caller's. The child is forked from a thread locked into NS, as a
	// child inherits its parent thread's namespace.
	NS *nshost.NS
	// Env is the process's environment; nil means the test process's.
	Env []string
}

// Process is a child process of the test binary. It gets SIGKILL if the
// thread that started it dies (Pdeathsig), so a crashed test leaves no
// orphan, and is otherwise stopped by its PID, never by name.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartProcess starts bin with args as opts say.
func StartProcess(bin string, args []string, opts ProcessOptions) (*Process, error) {
	log, err := os.OpenFile(opts.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = opts.Env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if opts.NS != nil {
		err = opts.NS.Do(cmd.Start)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		log.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(p.exited)
	}()
	return p, nil
}

// PID is the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitCode is the exit status once Exited is closed (-1 if killed by a
// signal or still running).
func (p *Process) ExitCode() int {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Stop sends SIGTERM, then SIGKILL if the process has not exited after
// grace, and waits for it. It reports whether the process exited on its
// own. Stopping a nil or exited process does nothing.
func (p *Process) Stop(grace time.Duration) (graceful bool) {
	if p == nil {
		return true
	}
	select {
	case <-p.exited:
		return true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return true
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return false
	}
}

// Kill sends SIGKILL, as a crash or a power cut would end the process,
// and waits for it to exit. Killing a nil or exited process does nothing.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}
