package dockerd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Stop removes the daemon's containers (docker rm -f), stops dockerd
// (SIGTERM by PID, SIGKILL after 30s) and then ends by PID whatever it
// left: processes still in its mount namespace (its containerd, shims,
// docker-proxy, and whatever Command started there) and in the cgroups
// of its containers, whose parent cgroup it then removes. Dir is kept,
// log included. It is an error if dockerd had to be killed, or had
// exited by itself. Stopping a stopped daemon does nothing. Stop a
// daemon before the network plugin (meshagent) its containers use:
// removing them calls the plugin.
func (d *Daemon) Stop() error {
	if d.proc == nil {
		return nil
	}
	var errs []error
	select {
	case <-d.proc.Exited():
		errs = append(errs, fmt.Errorf("%s on %s had exited by itself with status %d:\n%s",
			d.Engine.Name, d.Hostname, d.proc.ExitCode(), d.Log(20)))
	default:
		errs = append(errs, d.removeContainers())
		if !d.proc.Stop(stopGrace) {
			errs = append(errs, fmt.Errorf("%s on %s did not exit within %s of SIGTERM and was killed",
				d.Engine.Name, d.Hostname, stopGrace))
		}
	}
	d.proc = nil
	errs = append(errs, d.killLeftovers())
	return errors.Join(errs...)
}

// Close stops the daemon, unmounts whatever is still mounted under Dir
// (nothing, normally: the daemon's mounts went with its mount
// namespace) and removes Dir.
func (d *Daemon) Close() error {
	err := d.Stop()
	return errors.Join(err, unmountUnder(d.Dir), os.RemoveAll(d.Dir))
}

func (d *Daemon) removeContainers() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		return fmt.Errorf("%s on %s does not answer, its containers are left to Stop's SIGKILL: %w",
			d.Engine.Name, d.Hostname, err)
	}
	out, err := d.Docker(ctx, "ps", "-aq")
	if err != nil {
		return err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil
	}
	_, err = d.Docker(ctx, append([]string{"rm", "-f", "-v"}, ids...)...)
	return err
}

// killLeftovers SIGKILLs, by PID, the processes in the daemon's mount
// namespace and in its cgroups, until none is left (10s at most), and
// removes its cgroups.
func (d *Daemon) killLeftovers() error {
	self, _ := os.Readlink("/proc/self/ns/mnt")
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupProcs(d.cgroup)
		if d.mntNS != "" && d.mntNS != self {
			pids = append(pids, procsInMountNS(d.mntNS)...)
		}
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of %s on %s still alive after SIGKILL: %v", d.Engine.Name, d.Hostname, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return removeCgroup(d.cgroup)
}

// procsInMountNS lists the processes whose /proc/PID/ns/mnt reads ns.
func procsInMountNS(ns string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && link == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupDirs returns the directory of cgroup path in every cgroup (v1 or
// v2) hierarchy mounted, where it exists.
func cgroupDirs(path string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, fstype := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(fstype) == 0 || (fstype[0] != "cgroup" && fstype[0] != "cgroup2") {
			continue
		}
		dir := filepath.Join(unescapeMount(fields[4]), path)
		if _, err := os.Stat(dir); err == nil {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// cgroupProcs lists the processes in cgroup path and below, in any
// hierarchy.
func cgroupProcs(path string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, dir := range cgroupDirs(path) {
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroup removes cgroup path, children first, in every hierarchy.
func removeCgroup(path string) error {
	var errs []error
	for _, dir := range cgroupDirs(path) {
		var sub []string
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- { // children after their parent in walk order
			if err := rmdirRetry(sub[i]); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// rmdirRetry removes an empty cgroup, which can be busy for a moment
// after its last process died.
func rmdirRetry(dir string) error {
	var err error
	for range 50 {
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("removing cgroup %s: %w", dir, err)
}

// unmountUnder detaches every mount of the caller's namespace at or
// below dir, deepest first.
func unmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			if p := unescapeMount(f[4]); p == dir || strings.HasPrefix(p, dir+"/") {
				points = append(points, p)
			}
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
