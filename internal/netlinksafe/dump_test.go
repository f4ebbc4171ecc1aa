package netlinksafe

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDumpRetriesInterrupted(t *testing.T) {
	calls := 0
	got, err := Dump("things", func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted // partial
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(got) != 2 || calls != 3 {
		t.Fatalf("got %v, %v after %d calls; want [1 2], nil after 3", got, err, calls)
	}
}

func TestDumpGivesUp(t *testing.T) {
	calls := 0
	got, err := Dump("things", func() ([]int, error) {
		calls++
		return []int{1}, netlink.ErrDumpInterrupted
	})
	if !errors.Is(err, netlink.ErrDumpInterrupted) || got != nil || calls != attempts {
		t.Fatalf("got %v, %v after %d calls; want nil, ErrDumpInterrupted after %d", got, err, calls, attempts)
	}
	boom := errors.New("boom")
	if _, err := Dump("things", func() ([]int, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("other errors: got %v", err)
	}
}
