package zookeeper

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/meshnet/meshnet/kvstore"
)

// A mirror is a client's picture of the part of the tree under a prefix,
// kept up to date with ZooKeeper watches: a data watch and a child watch on
// every znode in it. ZooKeeper watches fire once and say only that a znode
// changed, so a notification marks its znode dirty, and the next round of
// reads re-reads the dirty znodes, which sets their watches again. When a
// round ends with no new notification the picture is the subtree as it was
// at one moment: ZooKeeper delivers a watch's notification before the
// answer to any read made after the change, so a znode that changed during
// the round would have been marked. Rounds only read what changed, so they
// end quickly even while others write under the prefix, where reading the
// whole subtree twice until both agree would not.
//
// List keeps a mirror per prefix it is asked for (listMirrors); every Watch
// has its own.
type mirror struct {
	s    *Store
	root string // the picture's root, read by notify

	mu  sync.Mutex // held for a round; guards pic
	pic *picture

	dmu    sync.Mutex // guards dirty and resync
	dirty  map[string]fired
	resync bool // read the whole subtree again: its watches are gone

	wake     chan struct{} // capacity 1: a notification came
	lastUsed time.Time     // by List; guarded by s.mu
}

func newMirror(s *Store, prefix string) *mirror {
	root, partial := splitPrefix(prefix)
	return &mirror{s: s, root: root, pic: newPicture(root, partial), dirty: map[string]fired{},
		resync: true, wake: make(chan struct{}, 1)}
}

// fired says which watches of a znode fired, and so are no longer set:
// only those are set again, since the library keeps every watch set until
// it fires.
type fired uint8

const (
	firedData     fired = 1 << iota // the data changed, or the znode went
	firedChildren                   // a child came or went, or the znode went
	firedBoth     = firedData | firedChildren
)

// notify takes an event from the client library: it must not block.
func (m *mirror) notify(ev zk.Event) {
	switch {
	case ev.Type == zk.EventNotWatching || ev.State == zk.StateExpired:
		m.dmu.Lock()
		m.resync = true
		m.dmu.Unlock()
	case ev.Type == zk.EventSession:
		return // reads fail meanwhile and are retried
	case ev.Path == m.root || strings.HasPrefix(ev.Path, m.root+"/") || m.root == "/":
		f := firedBoth // deleted, or created (the missing root's existence watch)
		switch ev.Type {
		case zk.EventNodeDataChanged:
			f = firedData
		case zk.EventNodeChildrenChanged:
			f = firedChildren
		}
		m.dmu.Lock()
		m.dirty[ev.Path] |= f
		m.dmu.Unlock()
	default:
		return
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// settle runs rounds of reads until one ends with nothing new to read,
// and returns the first failure. The caller holds m.mu.
func (m *mirror) settle(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := m.round(ctx); err != nil {
			return err
		}
		m.dmu.Lock()
		settled := len(m.dirty) == 0 && !m.resync
		m.dmu.Unlock()
		if settled {
			return nil
		}
	}
}

// round reads the whole subtree, or the znodes marked dirty. On failure it
// marks them again.
func (m *mirror) round(ctx context.Context) error {
	m.dmu.Lock()
	dirty, resync := m.dirty, m.resync
	m.dirty, m.resync = map[string]fired{}, false
	m.dmu.Unlock()
	var err error
	if resync {
		p := newPicture(m.pic.root, m.pic.partial)
		if err = m.s.readPicture(ctx, p); err == nil {
			m.pic = p
		}
	} else {
		err = m.refresh(ctx, dirty)
	}
	if err != nil {
		m.dmu.Lock()
		m.resync = m.resync || resync
		for path, f := range dirty {
			m.dirty[path] |= f
		}
		m.dmu.Unlock()
	}
	return err
}

// refresh reads the dirty znodes again and brings the picture up to date:
// changed data, and subtrees that appeared or went.
func (m *mirror) refresh(ctx context.Context, dirty map[string]fired) error {
	p := m.pic
	var added []string // new znodes whose subtrees are to be read
	if dirty[p.root] != 0 {
		old := p.rootChildren
		if err := m.s.readRoot(ctx, p); err != nil {
			return err
		}
		added = p.diffChildren(p.root, old, p.rootChildren, added)
	}
	var reads []nodeRead
	for path, f := range dirty {
		if old, ok := p.nodes[path]; ok {
			reads = append(reads, nodeRead{path: path, fired: f, old: old})
		}
	}
	slices.SortFunc(reads, func(a, b nodeRead) int { return strings.Compare(a.path, b.path) }) // parents first
	nodes, err := m.s.readNodesOf(ctx, reads)
	if err != nil {
		return err
	}
	for i, r := range reads {
		path := r.path
		old, ok := p.nodes[path]
		if !ok {
			continue // its parent went in this round
		}
		n := nodes[i]
		if n == nil {
			p.dropSubtree(path)
			continue
		}
		p.nodes[path] = n
		added = p.diffChildren(path, old.children, n.children, added)
	}
	return m.s.readTrees(ctx, p, added)
}

// maxListMirrors bounds the prefixes whose mirrors List keeps. Dropping
// one leaves its watches set until their znodes next change.
const maxListMirrors = 256

// List implements kvstore.Store from the prefix's mirror. A plain read
// (a barrier: its answer comes after the notifications of everything
// written before it) goes alongside a first round of re-reads, then
// rounds follow until the mirror is settled. The listing is thus a state
// the subtree had, at least as recent as the call, and its version a
// point after which a Watch misses nothing.
func (s *Store) List(ctx context.Context, prefix string) ([]kvstore.KVPair, uint64, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	m := s.listMirror(prefix)
	m.mu.Lock()
	defer m.mu.Unlock()
	var barrier error
	var wg sync.WaitGroup
	wg.Go(func() {
		barrier = s.do(ctx, func() error {
			_, _, err := s.conn.Exists(m.root)
			return err
		})
	})
	err := m.round(ctx)
	wg.Wait()
	if err == nil {
		err = barrier
	}
	if err == nil {
		err = m.settle(ctx)
	}
	if err != nil {
		return nil, 0, s.mapErr(err)
	}
	return m.pic.pairs(), m.pic.version(), nil
}

// listMirror returns List's mirror of prefix, made on first use; it drops
// the least recently used one beyond maxListMirrors.
func (s *Store) listMirror(prefix string) *mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.listMirrors[prefix]
	if !ok {
		if len(s.listMirrors) >= maxListMirrors {
			var oldest *mirror
			var oldestPrefix string
			for p, o := range s.listMirrors {
				if oldest == nil || o.lastUsed.Before(oldest.lastUsed) {
					oldest, oldestPrefix = o, p
				}
			}
			delete(s.mirrors, oldest)
			delete(s.listMirrors, oldestPrefix)
		}
		m = newMirror(s, prefix)
		s.listMirrors[prefix] = m
		s.mirrors[m] = struct{}{}
	}
	m.lastUsed = time.Now()
	return m
}
