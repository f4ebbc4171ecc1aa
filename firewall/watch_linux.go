package firewall

import (
	"context"
	"fmt"
	"time"

	"github.com/google/nftables"
)

// Watch calls changed whenever anything changes a table of meshnet's in
// the namespace — a rule, a set, a chain, or the table itself (`nft flush
// ruleset`) — until ctx ends; the next Apply then reads the kernel instead
// of trusting what it last wrote. Meshnet's own writes are changes too:
// the Apply after one reads the tables back and finds them right. changed
// must not block.
func (f *Firewall) Watch(ctx context.Context, changed func()) error {
	f.mu.Lock()
	c, err := f.conn()
	f.mu.Unlock()
	if err != nil {
		return err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectTables | nftables.MonitorObjectChains |
		nftables.MonitorObjectRules | nftables.MonitorObjectSets | nftables.MonitorObjectElements))
	events, err := c.AddMonitor(mon)
	if err != nil {
		return fmt.Errorf("watching nftables: %w", err)
	}
	defer func() {
		mon.Close()
		for range events { // until the library's relay has ended
		}
	}()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("watching nftables: the monitor stopped")
			}
			if ours(ev) {
				f.mu.Lock()
				f.checked = time.Time{}
				f.mu.Unlock()
				changed()
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// ours reports whether an event may concern meshnet's tables: one naming
// them, or one the library could not read.
func ours(ev *nftables.MonitorEvent) bool {
	var t *nftables.Table
	switch d := ev.Data.(type) {
	case *nftables.Table:
		t = d
	case *nftables.Chain:
		t = d.Table
	case *nftables.Rule:
		t = d.Table
	case *nftables.Set:
		t = d.Table
	}
	return t == nil || t.Name == TableName
}
