package zookeeper

import (
	"sync"

	"github.com/go-zookeeper/zk"
)

// The client library keeps, for every watching read (GetW, ChildrenW,
// ExistsW), a channel in its table until the watch fires, and every mirror
// hears every event through the store's callback anyway. So the store
// keeps one record of the watches it has set, a watch being a znode and a
// kind, and sets one only where none is: a mirror that finds the watch it
// needs already set reads without watching. ZooKeeper sends the
// notification of a change before the answer to any read made after it,
// to every watch set on the znode; so a watch set by one mirror serves
// them all. A watch is only counted as set once its read has answered,
// and forgotten when it fires, so the library's table holds at most a few
// channels per watched znode, however many mirrors come and go.

// watchKind is the library's kind of watch: a data watch (GetW, or ExistsW
// of a znode that exists), a child watch (ChildrenW), an existence watch
// (ExistsW of a missing znode).
type watchKind uint8

const (
	watchData watchKind = iota
	watchChild
	watchExist
)

type watchKey struct {
	path string
	kind watchKind
}

// arming is one watching read: set once it answered.
type arming struct{ set bool }

type watchTable struct {
	mu sync.Mutex // guards m
	m  map[watchKey]*arming
}

// begin says whether a read of path needs to set a watch of kind; if so,
// the returned arming is given to end.
func (t *watchTable) begin(path string, kind watchKind) (*arming, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := watchKey{path, kind}
	a := t.m[k]
	switch {
	case a != nil && a.set:
		return nil, false
	case a != nil: // another read is setting it: set it too, to be sure
		return a, true
	}
	if t.m == nil {
		t.m = map[watchKey]*arming{}
	}
	a = &arming{}
	t.m[k] = a
	return a, true
}

// end records the outcome of a watching read begun with begin. A watch
// that fired meanwhile (its record is gone) is not recorded.
func (t *watchTable) end(path string, kind watchKind, a *arming, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := watchKey{path, kind}
	if t.m[k] != a {
		return
	}
	if ok {
		a.set = true
	} else if !a.set {
		delete(t.m, k)
	}
}

// fired forgets the watches an event ends, as the library does.
func (t *watchTable) fired(ev zk.Event) {
	var kinds []watchKind
	switch {
	case ev.Type == zk.EventNotWatching || ev.State == zk.StateExpired:
		t.mu.Lock()
		t.m = nil // the library dropped them all
		t.mu.Unlock()
		return
	case ev.Type == zk.EventNodeCreated:
		kinds = []watchKind{watchExist}
	case ev.Type == zk.EventNodeDataChanged:
		kinds = []watchKind{watchExist, watchData}
	case ev.Type == zk.EventNodeChildrenChanged:
		kinds = []watchKind{watchChild}
	case ev.Type == zk.EventNodeDeleted:
		kinds = []watchKind{watchExist, watchData, watchChild}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range kinds {
		delete(t.m, watchKey{ev.Path, k})
	}
}

// getData reads a znode's data, setting a data watch unless one is set.
func (s *Store) getData(path string) ([]byte, *zk.Stat, error) {
	a, watch := s.watches.begin(path, watchData)
	if !watch {
		return s.conn.Get(path)
	}
	data, st, _, err := s.conn.GetW(path)
	s.watches.end(path, watchData, a, err == nil)
	return data, st, err
}

// getChildren reads a znode's children, setting a child watch unless one
// is set.
func (s *Store) getChildren(path string) ([]string, *zk.Stat, error) {
	a, watch := s.watches.begin(path, watchChild)
	if !watch {
		return s.conn.Children(path)
	}
	names, st, _, err := s.conn.ChildrenW(path)
	s.watches.end(path, watchChild, a, err == nil)
	return names, st, err
}

// existsWatched says whether a znode exists, setting an existence watch
// if it does not (unless one is set). A znode that exists gets a data
// watch from the library, left unrecorded: it is one channel, which goes
// when the znode changes.
func (s *Store) existsWatched(path string) (bool, error) {
	a, watch := s.watches.begin(path, watchExist)
	if !watch {
		ok, _, err := s.conn.Exists(path)
		return ok, err
	}
	ok, _, _, err := s.conn.ExistsW(path)
	s.watches.end(path, watchExist, a, err == nil && !ok)
	return ok, err
}
