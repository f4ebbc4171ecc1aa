package zookeeper

import (
	"reflect"
	"sync"
	"unsafe"
)

// SetAfterRootRead sets the hook a mirror's refresh runs after reading
// the root's children.
func SetAfterRootRead(s *Store, fn func() error) { s.afterRootRead = fn }

// LibraryWatchers counts the channels in the client library's watcher
// table (one per watching read not yet fired), under the library's lock.
func LibraryWatchers(s *Store) int {
	v := reflect.ValueOf(s.conn).Elem()
	mu := (*sync.Mutex)(unsafe.Pointer(v.FieldByName("watchersLock").UnsafeAddr()))
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for it := v.FieldByName("watchers").MapRange(); it.Next(); {
		n += it.Value().Len()
	}
	return n
}
