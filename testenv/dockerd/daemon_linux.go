package dockerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshnet/meshnet/testenv"
	"github.com/meshnet/meshnet/testenv/nshost"
)

// DefaultDNS is the name server the daemons give containers unless
// Options.DNS says otherwise: an address of TEST-NET-3 that no host
// namespace routes, so that a lookup of an outside name fails at once
// inside the machine instead of going to the test machine's resolver
// (Docker copies the host's /etc/resolv.conf, and falls back to Google's
// servers when it only lists loopback addresses).
const DefaultDNS = "203.0.113.53"

// stopGrace is how long dockerd has to exit after SIGTERM. It stops the
// containers still running with their own grace (10s) first; Stop removes
// them beforehand, so a healthy daemon exits in a second or two.
const stopGrace = 30 * time.Second

// Options say how a daemon is started.
type Options struct {
	// Hostname is the daemon's host name (its own UTS namespace); Docker's
	// classic overlay (serf, memberlist) refuses two nodes of one name.
	// Required; make it unique, e.g. from nshost.Prefix.
	Hostname string
	// Dir holds all of the daemon's state (see Daemon); it is created if
	// need be and removed by Close. Keep it short: unix socket paths
	// under it (DIR/exec/containerd/containerd.sock) must stay under 108
	// bytes; t.TempDir() is fine.
	Dir string
	// Bip is docker0's address and prefix (--bip), e.g. "172.31.1.1/24".
	// Empty means Docker's default, 172.17.0.1/16, the same on every
	// host; give each host its own to tell them apart.
	Bip string
	// DNS are the containers' name servers (--dns); nil means
	// DefaultDNS.
	DNS []string
	// StorageDriver is --storage-driver; empty means "vfs", which works on
	// any file system, nested mount namespaces included (each container
	// copies its image: nothing for busybox).
	StorageDriver string
	// Args are more dockerd flags, after the engine's (ClusterStoreArgs,
	// --experimental, …).
	Args []string
	// StartTimeout bounds the wait for GET /_ping; default one minute.
	StartTimeout time.Duration
}

// Daemon is a dockerd running in a host namespace, in a mount and UTS
// namespace of its own. Every path is under Dir and the same seen from
// the test process and from inside.
type Daemon struct {
	Engine   Engine
	Hostname string
	Dir      string
	// Socket is the API address, unix://DIR/docker.sock.
	Socket string
	// PluginDir is DIR/run/docker/plugins: inside, it is
	// /run/docker/plugins, where dockerd finds plugin sockets
	// (NAME.sock) and specs. A meshagent serving Docker's plugin API puts
	// its socket there.
	PluginDir string
	// DataRoot (--data-root) and ExecRoot (--exec-root, with the
	// sandboxes' network namespaces in ExecRoot/netns, mounted only
	// inside) are DIR/data and DIR/exec.
	DataRoot, ExecRoot string
	// LogPath is dockerd's (and its containerd's) log.
	LogPath string

	proc    *testenv.Process
	exited  <-chan struct{}
	args    []string   // of unshare, dockerd's among them
	ns      *nshost.NS // where it runs
	timeout time.Duration
	mntNS   string // readlink /proc/PID/ns/mnt, once running
	cgroup  string // --cgroup-parent
	// StartTime is how long dockerd took to answer GET /_ping.
	StartTime time.Duration
}

// mountScript runs as `sh -c` in the new mount and UTS namespaces, with
// $1 the host name, $2 … $4 the directories bound on /run/docker,
// /run/containerd and /etc/docker, then dockerd and its arguments.
// /run/containerd holds containerd 1.6's shim sockets (s/HASH) and
// /etc/docker the daemon's key.json, whose engine ID must differ across
// hosts.
const mountScript = `set -e
hostname "$1"
mount --bind "$2" /run/docker
mount --bind "$3" /run/containerd
mount --bind "$4" /etc/docker
shift 4
exec "$@"`

// Start starts dockerd of engine in the network namespace ns and waits
// until it answers GET /_ping. If it does not, Start stops it and
// whatever it started, and leaves Dir, log included, to the caller.
//
// The process is `unshare --mount --uts --propagation slave sh -c
// SCRIPT`, started from a thread in ns (testenv.StartProcess): the
// script sets the host name and binds per-host folders on /run/docker,
// /run/containerd and /etc/docker, then execs dockerd, whose PID it
// keeps. Slave propagation keeps every mount dockerd makes (vfs layers,
// shm, sandbox netns files) inside, while mounts and unmounts of the
// test's (a namespace made or deleted in /run/netns) still reach it: with
// private propagation, a namespace deleted by another test after the
// daemon started would stay alive as long as the daemon.
func Start(ctx context.Context, engine Engine, ns *nshost.NS, opts Options) (*Daemon, error) {
	if opts.Hostname == "" || opts.Dir == "" {
		return nil, errors.New("dockerd: Options.Hostname and Options.Dir are required")
	}
	if strings.ContainsAny(opts.Hostname, "/ \t\n") || len(opts.Hostname) > 64 {
		return nil, fmt.Errorf("dockerd: %q is no host name", opts.Hostname)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	d := &Daemon{Engine: engine, Hostname: opts.Hostname, Dir: dir,
		Socket:    "unix://" + filepath.Join(dir, "docker.sock"),
		PluginDir: filepath.Join(dir, "run", "docker", "plugins"),
		DataRoot:  filepath.Join(dir, "data"), ExecRoot: filepath.Join(dir, "exec"),
		LogPath: filepath.Join(dir, "dockerd.log"),
		cgroup:  "/dockerd-" + opts.Hostname}
	if n := len(filepath.Join(d.ExecRoot, "containerd", "containerd.sock")); n > 100 {
		return nil, fmt.Errorf("dockerd: Dir %s is too long for the unix sockets under it", dir)
	}
	etc := filepath.Join(dir, "etc")
	for _, p := range []string{d.PluginDir, filepath.Join(dir, "run", "containerd"), etc, d.DataRoot, d.ExecRoot,
		filepath.Join(dir, "cli"), filepath.Join(dir, "tmp"), "/run/docker", "/run/containerd", "/etc/docker"} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
	}
	// The daemon reads /etc/docker/daemon.json by default: an empty one
	// of its own keeps the machine's out.
	conf := filepath.Join(etc, "daemon.json")
	if err := os.WriteFile(conf, []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	d.args = []string{"--mount", "--uts", "--propagation", "slave", "sh", "-c", mountScript, "sh",
		opts.Hostname, filepath.Join(dir, "run", "docker"), filepath.Join(dir, "run", "containerd"), etc,
		engine.Dockerd}
	d.args = append(d.args, d.dockerdArgs(conf, opts)...)
	d.ns, d.timeout = ns, opts.StartTimeout
	if d.timeout == 0 {
		d.timeout = time.Minute
	}
	if err := d.launch(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

// launch starts the daemon's process and waits until it answers; if it
// does not, it is stopped with what it started.
func (d *Daemon) launch(ctx context.Context) error {
	start := time.Now()
	// TMPDIR (the last of a name wins): containerd dumps its stacks there
	// when dockerd kills it (20.10 sends SIGUSR1 first), which should go
	// with Dir.
	env := append(baseEnv(), "TMPDIR="+filepath.Join(d.Dir, "tmp"))
	var err error
	d.proc, err = testenv.StartProcess("unshare", d.args,
		testenv.ProcessOptions{Log: d.LogPath, NS: d.ns, Env: append(env, d.Engine.Env...)})
	if err != nil {
		return err
	}
	d.exited = d.proc.Exited()
	if err := d.waitReady(ctx, d.timeout); err != nil {
		d.proc.Stop(stopGrace)
		d.proc = nil
		return errors.Join(err, d.killLeftovers())
	}
	d.StartTime = time.Since(start)
	return nil
}

// Restart stops dockerd as its service manager would (SIGTERM: it stops
// its containers, and keeps them) and starts it again, in a new mount
// namespace with the same folders bound: containers with a restart
// policy come back. Paths under Dir (PluginDir among them) stay.
func (d *Daemon) Restart(ctx context.Context) error {
	if err := d.Halt(); err != nil {
		return err
	}
	return d.Resume(ctx)
}

// Halt stops dockerd as Restart does, and leaves it stopped until Resume:
// its containers are kept (stopped), Dir too.
func (d *Daemon) Halt() error {
	if d.proc == nil {
		return errors.New("dockerd: Halt of a stopped daemon")
	}
	graceful := d.proc.Stop(stopGrace)
	d.proc = nil
	if err := d.killLeftovers(); err != nil {
		return err
	}
	if !graceful {
		return fmt.Errorf("%s on %s did not exit within %s of SIGTERM", d.Engine.Name, d.Hostname, stopGrace)
	}
	d.mntNS = ""
	return nil
}

// Resume starts a halted daemon again.
func (d *Daemon) Resume(ctx context.Context) error {
	if d.proc != nil {
		return errors.New("dockerd: Resume of a running daemon")
	}
	return d.launch(ctx)
}

// noteMountNS records dockerd's mount namespace once its process has
// left the test's (unshare runs before dockerd does).
func (d *Daemon) noteMountNS() {
	if d.mntNS != "" {
		return
	}
	self, err1 := os.Readlink("/proc/self/ns/mnt")
	ns, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", d.proc.PID()))
	if err1 == nil && err2 == nil && ns != self {
		d.mntNS = ns
	}
}

func (d *Daemon) dockerdArgs(conf string, opts Options) []string {
	driver := opts.StorageDriver
	if driver == "" {
		driver = "vfs"
	}
	args := []string{"--config-file", conf,
		"--data-root", d.DataRoot, "--exec-root", d.ExecRoot,
		"--pidfile", filepath.Join(d.ExecRoot, "dockerd.pid"),
		"-H", d.Socket,
		"--storage-driver", driver,
		// Containers' cgroups under a parent of this daemon's (cgroupfs,
		// the default driver without systemd), so that Close finds and
		// removes them, and what a killed daemon left running.
		"--cgroup-parent", d.cgroup}
	if opts.Bip != "" {
		args = append(args, "--bip", opts.Bip)
	}
	dns := opts.DNS
	if dns == nil {
		dns = []string{DefaultDNS}
	}
	for _, s := range dns {
		args = append(args, "--dns", s)
	}
	args = append(args, d.Engine.Args...)
	return append(args, opts.Args...)
}

// baseEnv is the test process's environment without the variables that
// would point the daemon or the CLI elsewhere.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "PATH=") &&
			!strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "MESHNET_") {
			env = append(env, kv)
		}
	}
	return env
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		d.noteMountNS()
		if last = d.Ping(ctx); last == nil {
			d.noteMountNS()
			return nil
		}
		select {
		case <-d.proc.Exited():
			return fmt.Errorf("%s on %s exited with status %d while starting (log %s):\n%s",
				d.Engine.Name, d.Hostname, d.proc.ExitCode(), d.LogPath, d.Log(30))
		case <-ctx.Done():
			return fmt.Errorf("%s on %s does not answer GET /_ping within %s (%v; log %s):\n%s",
				d.Engine.Name, d.Hostname, timeout, last, d.LogPath, d.Log(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// HTTPClient is a client of the daemon's API socket; requests go to
// http://docker/PATH (a version prefix such as /v1.41 is optional).
func (d *Daemon) HTTPClient() *http.Client {
	path := strings.TrimPrefix(d.Socket, "unix://")
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

// Ping asks GET /_ping once.
func (d *Daemon) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := d.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /_ping: status %d: %s", resp.StatusCode, b)
	}
	return nil
}

// PID is dockerd's process id; 0 once stopped.
func (d *Daemon) PID() int {
	if d.proc == nil {
		return 0
	}
	return d.proc.PID()
}

// Exited is closed when dockerd has exited.
func (d *Daemon) Exited() <-chan struct{} { return d.exited }

// Env is the environment of a client of this daemon: DOCKER_HOST and a
// DOCKER_CONFIG of its own, for docker-compose or another CLI.
func (d *Daemon) Env() []string {
	return append(baseEnv(), "PATH="+os.Getenv("PATH"), "DOCKER_HOST="+d.Socket,
		"DOCKER_CONFIG="+filepath.Join(d.Dir, "cli"))
}

// DockerCommand is the engine's docker CLI with ARGS against this
// daemon, ready to run (stdin, stdout and stderr unset).
func (d *Daemon) DockerCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.Engine.Docker, args...)
	cmd.Env = d.Env()
	return cmd
}

// Docker runs the docker CLI with ARGS against this daemon and returns
// its stdout; the error of a failed run has its stderr on one line.
func (d *Daemon) Docker(ctx context.Context, args ...string) (string, error) {
	return d.DockerInput(ctx, nil, args...)
}

// DockerInput is Docker with stdin (docker import -, docker load).
func (d *Daemon) DockerInput(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := d.DockerCommand(ctx, args...)
	cmd.Stdin = stdin
	return d.run(cmd, "docker", args)
}

// Compose runs Debian's docker-compose (Compose 1.29, which negotiates
// the API version with either engine) with ARGS in dir, the folder of a
// docker-compose.yml, against this daemon; like Docker, it returns
// stdout, and stderr on one line in the error.
func (d *Daemon) Compose(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker-compose", args...)
	cmd.Dir, cmd.Env = dir, d.Env()
	return d.run(cmd, "docker-compose", args)
}

func (d *Daemon) run(cmd *exec.Cmd, name string, args []string) (string, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s on %s: %w: %s", name, strings.Join(args, " "), d.Hostname, err,
			strings.Join(strings.Fields(errb.String()), " "))
	}
	return out.String(), nil
}

// Command is NAME ARGS run inside dockerd's mount, network and UTS
// namespaces (nsenter --target PID --mount --net --uts), where a
// meshagent serving the daemon as a network plugin must run: it sees
// the sandboxes' namespace files under ExecRoot/netns and serves its
// socket in /run/docker/plugins (PluginDir). Named network namespaces
// it makes in /run/netns stay in that mount namespace (see Start): the
// test sees them through Command (ip netns), not in its own /run/netns.
// The command gets SIGKILL if the thread that started it dies, like
// testenv.StartProcess's; Stop kills what still runs in the daemon's
// mount namespace.
func (d *Daemon) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--target", strconv.Itoa(d.PID()),
		"--mount", "--net", "--uts", "--", name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// StartProcess starts bin ARGS inside dockerd's namespaces, as Command
// does, as a testenv.Process logging to log: for a long-running process
// such as a meshagent. Its environment is the test's without DOCKER_*
// and MESHNET_* variables.
func (d *Daemon) StartProcess(bin string, args []string, log string) (*testenv.Process, error) {
	return testenv.StartProcess("nsenter", append([]string{"--target", strconv.Itoa(d.PID()),
		"--mount", "--net", "--uts", "--", bin}, args...),
		testenv.ProcessOptions{Log: log, Env: append(baseEnv(), "PATH="+os.Getenv("PATH"))})
}

// Log returns the last n lines of dockerd's log.
func (d *Daemon) Log(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return err.Error()
	}
	return tail(b, n)
}
