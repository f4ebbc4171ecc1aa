package zookeeper

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/kvstore"
)

// maxInFlight bounds the reads a walk of a subtree has outstanding; the
// client pipelines them on its connection.
const maxInFlight = 64

// tnode is one znode of a picture.
type tnode struct {
	data     []byte   // nil: a directory only
	stat     zk.Stat  // from the data read
	children []string // names, when read
	cpzxid   int64    // pzxid seen by the children read
}

// picture is the part of a subtree that belongs to a prefix: the znodes
// under root whose first name level starts with partial.
type picture struct {
	root, partial string
	rootChildren  []string // matching names
	// floor is root's pzxid or, if root does not exist, that of its
	// nearest ancestor: no older than the deletion of anything that was
	// under root.
	floor int64
	nodes map[string]*tnode // by path
}

func newPicture(root, partial string) *picture {
	return &picture{root: root, partial: partial, nodes: map[string]*tnode{}}
}

// version is the newest zxid the picture holds.
func (p *picture) version() uint64 {
	v := p.floor
	for _, n := range p.nodes {
		v = max(v, n.stat.Mzxid, n.stat.Pzxid, n.cpzxid)
	}
	return uint64(v)
}

// pairs are the keys in the picture, sorted by key, with copies of the
// values if clone (for callers, who own them); otherwise the values are
// the picture's, which are never written to.
func (p *picture) pairs(clone bool) []kvstore.KVPair {
	var kvs []kvstore.KVPair
	for path, n := range p.nodes {
		if n.data == nil {
			continue
		}
		key, err := keyOf(path)
		if err != nil {
			continue // a znode some other program made
		}
		v := n.data
		if clone {
			v = bytes.Clone(v)
		}
		kvs = append(kvs, kvstore.KVPair{Key: key, Value: v, Version: uint64(n.stat.Mzxid)})
	}
	slices.SortFunc(kvs, func(a, b kvstore.KVPair) int { return strings.Compare(a.Key, b.Key) })
	return kvs
}

// dropSubtree removes path and everything under it.
func (p *picture) dropSubtree(path string) {
	delete(p.nodes, path)
	for q := range p.nodes {
		if strings.HasPrefix(q, path+"/") {
			delete(p.nodes, q)
		}
	}
}

// diffChildren drops the subtrees of the children of dir that went (in
// was, not in now) and appends the paths of those that came to added.
func (p *picture) diffChildren(dir string, was, now, added []string) []string {
	had := make(map[string]bool, len(was))
	for _, name := range was {
		had[name] = true
	}
	for _, name := range now {
		if had[name] {
			delete(had, name)
		} else {
			added = append(added, childPath(dir, name))
		}
	}
	for name := range had {
		p.dropSubtree(childPath(dir, name))
	}
	return added
}

// readPicture reads p's subtree from its root, setting a data watch and
// a child watch on every znode, and an existence watch on a missing root.
func (s *Store) readPicture(ctx context.Context, p *picture) error {
	if err := s.readRoot(ctx, p); err != nil {
		return err
	}
	paths := make([]string, len(p.rootChildren))
	for i, name := range p.rootChildren {
		paths[i] = childPath(p.root, name)
	}
	return s.readTrees(ctx, p, paths)
}

// readRoot reads the names of root's matching children, setting a child
// watch, or finds that root does not exist, setting an existence watch, and
// takes the floor from its nearest ancestor.
func (s *Store) readRoot(ctx context.Context, p *picture) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	for {
		c, err := request(ctx, s, func() (children, error) {
			var c children
			var err error
			c.names, c.stat, err = s.getChildren(p.root)
			return c, err
		})
		if err == nil {
			p.floor, p.rootChildren = c.stat.Pzxid, nil
			for _, name := range c.names {
				if matches(p.root, name, p.partial) {
					p.rootChildren = append(p.rootChildren, name)
				}
			}
			return nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return err
		}
		exists, err := request(ctx, s, func() (bool, error) {
			return s.existsWatched(p.root)
		})
		if err != nil {
			return err
		}
		if !exists {
			p.rootChildren = nil
			p.floor, err = s.floorOf(ctx, parentOf(p.root))
			return err
		}
		// Created in between: read it again.
	}
}

// floorOf is the pzxid of dir or of its nearest existing ancestor.
func (s *Store) floorOf(ctx context.Context, dir string) (int64, error) {
	for {
		st, err := s.exists(ctx, s.conn, dir)
		if err != nil {
			return 0, err
		}
		if st != nil {
			return st.Pzxid, nil
		}
		if dir == "/" {
			return 0, nil
		}
		dir = parentOf(dir)
	}
}

// readTrees reads the znodes at paths and everything under them into p,
// a level at a time.
func (s *Store) readTrees(ctx context.Context, p *picture, paths []string) error {
	for len(paths) > 0 {
		reads := make([]nodeRead, len(paths))
		for i, path := range paths {
			reads[i] = nodeRead{path: path, fired: firedBoth}
		}
		nodes, err := s.readNodesOf(ctx, reads)
		if err != nil {
			return err
		}
		var next []string
		for i, n := range nodes {
			if n == nil {
				continue // deleted meanwhile; its parent's change says so
			}
			p.nodes[paths[i]] = n
			for _, name := range n.children {
				next = append(next, childPath(paths[i], name))
			}
		}
		paths = next
	}
	return nil
}

// nodeRead is a znode to read again: the watches that fired, and what the
// picture had (nil for a znode new to it).
type nodeRead struct {
	path  string
	fired fired
	old   *tnode
}

// readNodesOf reads znodes in parallel; a nil entry is a znode that does
// not exist.
func (s *Store) readNodesOf(ctx context.Context, reads []nodeRead) ([]*tnode, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return request(ctx, s, func() ([]*tnode, error) {
		nodes := make([]*tnode, len(reads))
		errs := make([]error, len(reads))
		sem := make(chan struct{}, maxInFlight)
		var wg sync.WaitGroup
		for i, r := range reads {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				nodes[i], errs[i] = s.readNode(r)
			})
		}
		wg.Wait()
		return nodes, errors.Join(errs...)
	})
}

// children is a znode's children and stat.
type children struct {
	names []string
	stat  *zk.Stat
}

// readNode reads a znode again and sets the watches that fired: with the
// data watch, its data and stat; with the child watch, its children (and
// stat). What a watch that did not fire covers has not changed and comes
// from r.old. Both reads are made at once. It returns nil if the znode
// does not exist.
func (s *Store) readNode(r nodeRead) (*tnode, error) {
	n := &tnode{}
	if r.old != nil {
		*n = *r.old
	}
	var childErr, dataErr error
	var childStat *zk.Stat
	var wg sync.WaitGroup
	if r.fired&firedChildren != 0 {
		wg.Go(func() {
			var names []string
			names, childStat, childErr = s.getChildren(r.path)
			if childErr == nil {
				n.children, n.cpzxid = names, childStat.Pzxid
			}
		})
	}
	if r.fired&firedData != 0 {
		var data []byte
		var st *zk.Stat
		data, st, dataErr = s.getData(r.path)
		if dataErr == nil {
			n.data, n.stat = data, *st
		}
	}
	wg.Wait()
	if r.fired&firedData == 0 && childErr == nil {
		// The data and its stat are as read before; the children changed.
		n.stat.Pzxid, n.stat.Cversion, n.stat.NumChildren = childStat.Pzxid, childStat.Cversion, childStat.NumChildren
	}
	for _, err := range []error{dataErr, childErr} {
		if errors.Is(err, zk.ErrNoNode) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return n, nil
}
