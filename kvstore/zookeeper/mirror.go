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
// has its own. The watches themselves are the store's (armed.go): a
// mirror sets only those no other has set.
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

// maxRounds bounds the rounds of reads of one settle: under writes that
// never pause, some notification always comes during a round.
const maxRounds = 4

// settle runs rounds of reads until one ends with nothing new to read, or
// maxRounds have run, and returns the first failure. It returns through,
// a zxid up to which the picture holds every change: once settled, the
// picture's version; when cut short, the version the picture had when the
// last round began. A znode that changed after its last read, and is
// therefore still dirty, was either read in that round, which ZooKeeper
// answered after everything up to that version, or was clean when the
// round began, so the change's notification, which comes before any
// answer showing a later zxid, had not come: either way the change came
// after through. The caller holds m.mu.
func (m *mirror) settle(ctx context.Context) (through uint64, err error) {
	for i := 1; ; i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		start := m.pic.version()
		if err := m.round(ctx); err != nil {
			return 0, err
		}
		m.dmu.Lock()
		settled, resync := len(m.dirty) == 0 && !m.resync, m.resync
		m.dmu.Unlock()
		if settled {
			return m.pic.version(), nil
		}
		if i >= maxRounds && !resync && start > 0 {
			return start, nil
		}
	}
}

// round reads the whole subtree, or the znodes marked dirty. On failure it
// marks them again; a refresh that failed half-way has changed the
// picture in part (new children listed but not read, say), so the next
// round reads the whole subtree again.
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
		m.resync = true
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
		if m.s.afterRootRead != nil {
			if err := m.s.afterRootRead(); err != nil {
				return err
			}
		}
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

// List keeps the mirrors of at most maxListMirrors prefixes, and drops
// those not used for listMirrorIdle: each holds a copy of its subtree.
// Dropping one costs nothing on the connection (the store's watches stay
// set for the other mirrors, or until their znodes next change).
const (
	maxListMirrors = 32
	listMirrorIdle = 5 * time.Minute
)

// List implements kvstore.Store from the prefix's mirror. A plain read
// (a barrier: its answer comes after the notifications of everything
// written before it) goes alongside a first round of re-reads, then
// rounds follow until the mirror is settled. The listing is thus a state
// the subtree had, at least as recent as the call, and its version a
// point after which a Watch misses nothing. Under writes that never
// pause, the mirror may not settle: the listing is then as recent as the
// call, but holds some keys at newer versions than others, and its
// version is the one up to which it holds every change (see settle),
// which may be older than some keys listed; a Watch from it sends them
// again, or starts with a reset.
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
	var through uint64
	if err == nil {
		through, err = m.settle(ctx)
	}
	if err != nil {
		return nil, 0, s.mapErr(err)
	}
	return m.pic.pairs(true), through, nil
}

// listMirror returns List's mirror of prefix, made on first use; it drops
// the least recently used one beyond maxListMirrors.
func (s *Store) listMirror(prefix string) *mirror {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for p, o := range s.listMirrors {
		if p != prefix && now.Sub(o.lastUsed) > listMirrorIdle {
			delete(s.mirrors, o)
			delete(s.listMirrors, p)
		}
	}
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
	m.lastUsed = now
	return m
}
