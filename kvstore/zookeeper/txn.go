package zookeeper

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/kvstore"
)

// znode is what a read found at an op's path.
type znode struct {
	read   bool // false: not read yet; the plan guesses
	exists bool
	isKey  bool // it has data; without, it is only a directory
	stat   zk.Stat
}

// Txn implements kvstore.Store.
func (s *Store) Txn(ctx context.Context, ops ...kvstore.Op) error {
	_, err := s.txn(ctx, ops)
	return err
}

// txn runs ops as one ZooKeeper multi. The multi is planned from reads of
// the ops' znodes: a condition that does not hold there fails the
// transaction with a TxnError, and every write is conditioned on the data
// version read, so the multi succeeds only if nothing changed since. If it
// fails, the plan was stale: read again and retry. Create and Put are first
// tried without a read, as a create and as an unconditional write.
// Directories missing above created keys are created in the same multi.
// It returns the mzxid written, or 0 if the ops wrote no data.
func (s *Store) txn(ctx context.Context, ops []kvstore.Op) (uint64, error) {
	if err := kvstore.CheckOps(ops); err != nil {
		return 0, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	paths := make([]string, len(ops))
	nodes := make([]znode, len(ops))
	var toRead []int
	for i, op := range ops {
		paths[i] = znodePath(op.Key)
		if op.Kind != kvstore.OpCreate && op.Kind != kvstore.OpPut {
			toRead = append(toRead, i)
		}
	}
	var (
		lastSig string
		repeats int // failures in a row like the last one
	)
	for attempt := 0; ; attempt++ {
		// The directories of keys this attempt may create, unless known.
		var dirs []string
		for i, op := range ops {
			if op.Kind == kvstore.OpCreate || op.Kind == kvstore.OpPut && attempt > 0 {
				if d := parentOf(paths[i]); d != "/" && !s.dirs.has(d) && !slices.Contains(dirs, d) {
					dirs = append(dirs, d)
				}
			}
		}
		missing, err := s.readNodes(ctx, paths, nodes, toRead, dirs)
		if err != nil {
			return 0, s.mapErr(err)
		}
		reqs, err := plan(ops, paths, nodes, s.acl)
		if err != nil {
			return 0, err
		}
		reqs = arrange(reqs, missing, s.acl)
		res, err := request(ctx, s, func() ([]zk.MultiResponse, error) { return s.conn.Multi(reqs...) })
		if err == nil {
			for _, r := range reqs {
				if c, ok := r.(*zk.CreateRequest); ok {
					s.dirs.add(parentOf(c.Path))
				}
			}
			s.pruneAfter(ctx, s.conn, reqs)
			return newVersion(res), nil
		}
		j := failedStep(res)
		if j < 0 {
			return 0, s.mapErr(err)
		}
		// A plan that keeps failing the same way will not get better by
		// reading again (no one else is changing what it depends on). It
		// may fail alike a few times under contention, though: another
		// client creating and pruning the same directory between our read
		// and our multi. Those retries wait a little, longer each time.
		sig := signature(reqs, j)
		if sig != lastSig {
			lastSig, repeats = sig, 0
		} else if repeats++; repeats >= maxRepeats {
			return 0, fmt.Errorf("%s cannot apply the transaction: %s: %w", s.endpoint, describe(reqs[j]), res[j].Error)
		} else if err := sleepCtx(ctx, time.Duration(repeats)*time.Duration(rand.IntN(5000))*time.Microsecond); err != nil {
			return 0, s.mapErr(err)
		}
		switch opErr := res[j].Error; {
		case errors.Is(opErr, zk.ErrNoNode):
			if c, ok := reqs[j].(*zk.CreateRequest); ok {
				s.dirs.drop(parentOf(c.Path)) // it went
			}
		case errors.Is(opErr, zk.ErrNodeExists), errors.Is(opErr, zk.ErrBadVersion), errors.Is(opErr, zk.ErrNotEmpty):
		default:
			return 0, s.mapErr(opErr)
		}
		// The plan went stale: read every op's znode again.
		toRead = toRead[:0]
		for i := range ops {
			toRead = append(toRead, i)
		}
	}
}

// maxRepeats is how many times in a row a transaction may fail the same
// way before it gives up.
const maxRepeats = 8

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// arrange completes the requests of a plan into a multi ZooKeeper can
// apply in order: it adds the missing directories that its creates need
// (unless the transaction creates one as a key itself), turns the delete of
// a key that the transaction gives children into clearing its data (it
// stays as their directory), and sorts the requests by path, stably, so
// that a znode is created before its children and a key's create stays
// before the write of its value.
func arrange(reqs []any, missing []string, acl []zk.ACL) []any {
	created := map[string]bool{}
	for _, r := range reqs {
		if c, ok := r.(*zk.CreateRequest); ok {
			created[c.Path] = true
		}
	}
	under := func(dir string) bool {
		for p := range created {
			if strings.HasPrefix(p, dir+"/") {
				return true
			}
		}
		return false
	}
	var out []any
	for _, d := range missing {
		if !created[d] && under(d) {
			out = append(out, &zk.CreateRequest{Path: d, Data: nil, Acl: acl, Flags: zk.FlagPersistent})
		}
	}
	for _, r := range out {
		created[r.(*zk.CreateRequest).Path] = true
	}
	for _, r := range reqs {
		if d, ok := r.(*zk.DeleteRequest); ok && under(d.Path) {
			r = &zk.SetDataRequest{Path: d.Path, Data: nil, Version: d.Version}
		}
		out = append(out, r)
	}
	slices.SortStableFunc(out, func(a, b any) int { return strings.Compare(reqPath(a), reqPath(b)) })
	return out
}

// reqPath is the znode a request of a multi writes or checks.
func reqPath(r any) string {
	switch r := r.(type) {
	case *zk.CreateRequest:
		return r.Path
	case *zk.SetDataRequest:
		return r.Path
	case *zk.DeleteRequest:
		return r.Path
	case *zk.CheckVersionRequest:
		return r.Path
	}
	return ""
}

// describe names a request of a multi for a message.
func describe(r any) string {
	switch r := r.(type) {
	case *zk.CreateRequest:
		return "creating " + r.Path
	case *zk.SetDataRequest:
		return "writing " + r.Path
	case *zk.DeleteRequest:
		return "deleting " + r.Path
	case *zk.CheckVersionRequest:
		return "checking " + r.Path
	}
	return "an unknown request"
}

// signature identifies a plan and the request of it that failed.
func signature(reqs []any, failed int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", failed)
	for _, r := range reqs {
		fmt.Fprintf(&b, "|%T%+v", r, r)
	}
	return b.String()
}

// plan turns ops into the requests of one multi, given what the reads
// found. A condition that already fails on the reads is a TxnError.
func plan(ops []kvstore.Op, paths []string, nodes []znode, acl []zk.ACL) ([]any, error) {
	var reqs []any
	for i, op := range ops {
		n, p := nodes[i], paths[i]
		failed := func(err error) error { return &kvstore.TxnError{Index: i, Key: op.Key, Err: err} }
		switch op.Kind {
		case kvstore.OpCreate:
			switch {
			case n.isKey:
				return nil, failed(kvstore.ErrKeyExists)
			case n.exists: // a directory becomes a key too
				reqs = append(reqs, &zk.SetDataRequest{Path: p, Data: value(op.Value), Version: n.stat.Version})
			default:
				reqs = append(reqs, createKey(p, op.Value, acl)...)
			}
		case kvstore.OpPut:
			if n.read && !n.exists {
				reqs = append(reqs, createKey(p, op.Value, acl)...)
			} else {
				reqs = append(reqs, &zk.SetDataRequest{Path: p, Data: value(op.Value), Version: -1})
			}
		default:
			if !n.isKey {
				return nil, failed(kvstore.ErrKeyNotFound)
			}
			if op.Kind != kvstore.OpDelete && uint64(n.stat.Mzxid) != op.Version {
				return nil, failed(kvstore.ErrKeyModified)
			}
			switch op.Kind {
			case kvstore.OpSwap:
				reqs = append(reqs, &zk.SetDataRequest{Path: p, Data: value(op.Value), Version: n.stat.Version})
			case kvstore.OpCheck:
				reqs = append(reqs, &zk.CheckVersionRequest{Path: p, Version: n.stat.Version})
			case kvstore.OpDelete, kvstore.OpCompareDelete:
				if n.stat.NumChildren > 0 {
					// Still the directory of longer keys: drop only the data.
					reqs = append(reqs, &zk.SetDataRequest{Path: p, Data: nil, Version: n.stat.Version})
				} else {
					reqs = append(reqs, &zk.DeleteRequest{Path: p, Version: n.stat.Version})
				}
			}
		}
	}
	return reqs, nil
}

// createKey creates a key's znode and writes its value in the same multi:
// the write's stat reports the new mzxid, which a create does not.
func createKey(path string, v []byte, acl []zk.ACL) []any {
	return []any{
		&zk.CreateRequest{Path: path, Data: nil, Acl: acl, Flags: zk.FlagPersistent},
		&zk.SetDataRequest{Path: path, Data: value(v), Version: 0},
	}
}

// failedStep is the index of the request that failed a multi, or -1 if
// the multi failed as a whole (not sent, no answer, refused).
func failedStep(res []zk.MultiResponse) int {
	for j, r := range res {
		if r.Error != nil {
			return j
		}
	}
	return -1
}

// newVersion is the mzxid a successful multi wrote (all its writes share
// one zxid), or 0 if it wrote no data.
func newVersion(res []zk.MultiResponse) uint64 {
	var v int64
	for _, r := range res {
		if r.Stat != nil {
			v = max(v, r.Stat.Mzxid)
		}
	}
	return uint64(v)
}

// readNodes reads the znodes of paths[i] for every i in which into
// nodes[i], and checks that the directories dirs exist; it returns those
// missing with their missing parents. The reads are made at once.
func (s *Store) readNodes(ctx context.Context, paths []string, nodes []znode, which []int, dirs []string) ([]string, error) {
	if len(which) == 0 && len(dirs) == 0 {
		return nil, nil
	}
	type reads struct {
		nodes   []znode
		missing []string
	}
	r, err := request(ctx, s, func() (reads, error) {
		r := reads{nodes: make([]znode, len(which))}
		errs := make([]error, len(which)+len(dirs))
		missing := make([][]string, len(dirs))
		var wg sync.WaitGroup
		for j, i := range which {
			wg.Go(func() {
				data, st, err := s.conn.Get(paths[i])
				switch {
				case errors.Is(err, zk.ErrNoNode):
					r.nodes[j] = znode{read: true}
				case err != nil:
					errs[j] = err
				default:
					r.nodes[j] = znode{read: true, exists: true, isKey: data != nil, stat: *st}
				}
			})
		}
		for k, d := range dirs {
			wg.Go(func() {
				// Up from d to the first directory that exists.
				for ; d != "/" && !s.dirs.has(d); d = parentOf(d) {
					ok, _, err := s.conn.Exists(d)
					if err != nil {
						errs[len(which)+k] = err
						return
					}
					if ok {
						s.dirs.add(d)
						return
					}
					missing[k] = append(missing[k], d)
				}
			})
		}
		wg.Wait()
		for _, m := range missing {
			for _, d := range m {
				if !slices.Contains(r.missing, d) {
					r.missing = append(r.missing, d)
				}
			}
		}
		return r, errors.Join(errs...)
	})
	if err != nil {
		return nil, err
	}
	for j, i := range which {
		nodes[i] = r.nodes[j]
	}
	return r.missing, nil
}

// dirCache remembers directories known to exist, so that a create in one
// is sent without reading first. It is only a hint: a directory pruned
// meanwhile makes the multi fail, and the next attempt reads.
type dirCache struct {
	mu sync.Mutex // guards m
	m  map[string]bool
}

// maxDirCache bounds the cache; it starts over when full.
const maxDirCache = 4096

func (c *dirCache) has(dir string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[dir]
}

func (c *dirCache) add(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxDirCache {
		c.m = map[string]bool{}
	}
	c.m[dir] = true
}

func (c *dirCache) drop(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, dir)
}

// mkdirs creates the directory znode dir and its missing parents.
func (s *Store) mkdirs(ctx context.Context, conn *zk.Conn, dir string) error {
	for dir != "/" {
		err := s.do(ctx, func() error {
			_, err := conn.Create(dir, nil, zk.FlagPersistent, s.acl)
			return err
		})
		switch {
		case err == nil, errors.Is(err, zk.ErrNodeExists):
			return nil
		case !errors.Is(err, zk.ErrNoNode):
			return err
		}
		if err := s.mkdirs(ctx, conn, parentOf(dir)); err != nil {
			return err
		}
	}
	return nil
}

// pruneAfter removes the directories that the deletes among reqs left
// empty.
func (s *Store) pruneAfter(ctx context.Context, conn *zk.Conn, reqs []any) {
	seen := map[string]bool{}
	for _, r := range reqs {
		if d, ok := r.(*zk.DeleteRequest); ok && !seen[parentOf(d.Path)] {
			seen[parentOf(d.Path)] = true
			s.prune(ctx, conn, parentOf(d.Path))
		}
	}
}

// prune deletes dir, and then its parents, while they are empty
// directories (no data, no children). It is best effort: a directory that
// gains a child or a value in between stays (the delete is conditioned on
// its version and fails if it has children), and a writer that finds its
// directory gone creates it again.
func (s *Store) prune(ctx context.Context, conn *zk.Conn, dir string) {
	for dir != "/" {
		n, err := s.get(ctx, conn, dir)
		if err != nil || n.data != nil || n.stat.NumChildren > 0 {
			return
		}
		if err := s.do(ctx, func() error { return conn.Delete(dir, n.stat.Version) }); err != nil {
			return
		}
		s.dirs.drop(dir)
		dir = parentOf(dir)
	}
}
