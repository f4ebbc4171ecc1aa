package statefile

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestStateJournalReplay checks that loading applies the journal's
// entries newer than the snapshot, in order, over it, and ignores a last
// line cut short by a crash.
func TestStateJournalReplay(t *testing.T) {
	dir := t.TempDir()
	f := &file{path: filepath.Join(dir, "state.json")}
	snapshot := `{"seq":2,"sandboxes":[{"id":"A","name":"a"},{"id":"B","name":"b"}],"endpoints":[{"id":"eA","sandbox_id":"A"}]}`
	journal := strings.Join([]string{
		`{"seq":1,"gone_sandboxes":["B"]}`, // in the snapshot already
		`{"seq":3,"sandboxes":[{"id":"C","name":"c"}],"endpoints":[{"id":"eC","sandbox_id":"C"}]}`,
		`{"seq":4,"sandboxes":[{"id":"B","name":"b2"}],"gone_sandboxes":["A"],"gone_endpoints":["eA"]}`,
		`{"seq":5,"sandboxes":[{"id":"D"`, // torn: its operation never returned
	}, "\n")
	if err := os.WriteFile(f.path, []byte(snapshot), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.journalPath(), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := f.load()
	if err != nil {
		t.Fatal(err)
	}
	var sandboxes, endpoints []string
	for _, s := range st.Sandboxes {
		sandboxes = append(sandboxes, s.ID+"="+s.Name.String())
	}
	for _, e := range st.Endpoints {
		endpoints = append(endpoints, e.ID)
	}
	slices.Sort(sandboxes)
	if want := []string{"B=b2", "C=c"}; !slices.Equal(sandboxes, want) {
		t.Errorf("sandboxes %v, want %v", sandboxes, want)
	}
	if want := []string{"eC"}; !slices.Equal(endpoints, want) {
		t.Errorf("endpoints %v, want %v", endpoints, want)
	}
	if f.seq != 4 || st.Seq != 4 {
		t.Errorf("sequence %d/%d after replay, want 4", f.seq, st.Seq)
	}
	if f.entries != math.MaxInt {
		t.Errorf("after a journal cut short, %d entries counted: the next save must be a snapshot", f.entries)
	}

	// A damaged line that is not the last is reported, not skipped.
	bad := strings.Replace(journal, `{"seq":3,`, `{"seq":3,,`, 1) + "\n" + `{"seq":6}`
	if err := os.WriteFile(f.journalPath(), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&file{path: f.path}).load(); err == nil || !strings.Contains(err.Error(), "corrupt at line 2") {
		t.Errorf("load of a damaged journal: %v", err)
	}
}
