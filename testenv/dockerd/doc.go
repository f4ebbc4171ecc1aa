// Package dockerd runs real Docker engines on the namespace hosts of
// testenv/nshost, so that end-to-end tests can run meshnet as a Docker
// network and IPAM plugin under real containers on two or three hosts,
// and measure Docker's own classic overlay beside it.
//
// Two engines: [Legacy], Debian's Docker 20.10 (docker.io: dockerd,
// containerd 1.6, runc 1.1), the last line whose classic overlay takes an
// external cluster store (--cluster-store etcd://…, see [StartEtcdV2] and
// [ClusterStoreArgs]); and [Modern], Docker 29 built from moby's Go module
// into the test cache, with runc 1.3 as its default runtime. [Install]
// apt-installs what they need ([DebianPackages]).
//
// [Start] runs one dockerd per host: in the host's network namespace and
// in a mount and UTS namespace of its own (unshare --mount --uts
// --propagation slave), where it has its host name and per-host folders
// bound on /run/docker (so /run/docker/plugins is the host's own plugin
// directory, [Daemon.PluginDir] seen from outside), /run/containerd (its
// containerd's shim sockets) and /etc/docker (its key.json, hence a
// distinct engine ID). Data root, exec root, pid file, log and API socket
// are under [Options.Dir], at the same paths inside and out, so the test
// process drives the daemon through [Daemon.Socket] (docker -H, or
// [Daemon.HTTPClient]). dockerd starts its own containerd (Debian's 1.6,
// for both engines). The flags of every daemon:
//
//	--config-file DIR/etc/daemon.json ({}: not the machine's)
//	--data-root DIR/data --exec-root DIR/exec --pidfile DIR/exec/dockerd.pid
//	-H unix://DIR/docker.sock --storage-driver vfs
//	--cgroup-parent /dockerd-HOSTNAME --bip BIP --dns 203.0.113.53
//
// then the engine's (Modern: --add-runtime runc13=RUNC
// --default-runtime runc13), then [Options.Args]. Nothing was needed for
// cgroups (cgroupfs is the default without systemd, cgroup v1 here; Docker
// 29 warns that v1 is deprecated) nor for oom_score_adj (dockerd's -500
// is allowed to root). A meshagent serving the daemon must run inside
// its namespaces ([Daemon.Command], [Daemon.StartProcess]): sandboxes'
// namespace files (ExecRoot/netns/ID) are mounts only visible there.
// Both engines find a plugin socket the test serves in PluginDir
// (NAME.sock) on `docker network create -d NAME`, and make the same
// calls for a network's life (Plugin.Activate,
// NetworkDriver.GetCapabilities, CreateNetwork, DeleteNetwork).
//
// Containers get their image from [ImportBusybox] (busybox-static made
// into a root filesystem by this package and imported: no registry is
// reachable) and the name server [DefaultDNS], an unrouted TEST-NET
// address. docker0 gets [Options.Bip]; the tests use 172.31.N.1/24 and
// user-defined networks 172.30.N.0/24, clear of the underlay
// (192.0.2.0/24) and of meshnet's default pools (10.0.0.0/8). Docker
// keeps its default firewall (iptables, FORWARD policy DROP, DNAT of
// published ports, MASQUERADE), in the host's namespace only.
//
// Pitfalls met on the way:
//   - Docker's classic overlay gossips (serf) on port 7946 of its host,
//     meshagent's port: a meshagent and a cluster-store dockerd on one
//     host collide, by design of both; run them on different hosts.
//   - etcd 3.6, the project's, has no v2 API, which is all Docker 20.10's
//     libkv speaks: StartEtcdV2 runs Debian's etcd 3.4 with --enable-v2.
//   - dockerd exits on SIGTERM only after stopping its containers, 10s
//     each for one that ignores SIGTERM (busybox httpd as PID 1): Stop
//     removes them first (docker rm -f).
//   - Nothing dockerd mounts reaches the test's mount namespace, and the
//     mount namespace dies with its last process; but containerd shims
//     and container processes outlive a killed dockerd, so Stop kills, by
//     PID, what is left in the daemon's mount namespace and in its
//     cgroup (--cgroup-parent /dockerd-HOSTNAME, removed after: cgroupfs
//     driver, cgroup v1 on the test machines), then Close removes Dir.
//   - Docker 29 passes its docker-proxy the listening socket
//     (-use-listen-fd), which Debian's 20.10 proxy does not know: the
//     modern engine has its own, first in its PATH. Docker 29 still
//     serves API 1.40 and up, so Debian's 20.10 CLI (API 1.41) drives
//     both engines.
//   - 20.10's dockerd sends its containerd SIGUSR1 before killing it when
//     it is slow to stop, and containerd dumps its stacks into $TMPDIR:
//     the daemons' TMPDIR is DIR/tmp, so no file is left in /tmp.
//   - busybox 1.35's wget segfaults with -T (timeout); use it without.
//   - The vfs storage driver (the default here) works on any file
//     system; each container copies its image, which for busybox is
//     nothing. Docker 29 with --storage-driver set keeps the graph
//     driver instead of the containerd image store.
package dockerd
