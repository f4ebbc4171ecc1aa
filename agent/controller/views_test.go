package controller

import (
	"testing"

	"github.com/meshnet/meshnet/agent/driver"
)

func TestMatchNetwork(t *testing.T) {
	n := &driver.Network{ID: "abcdef", Name: "multi", Driver: "overlay", Scope: "global", Labels: map[string]string{"env": "prod", "x": ""}}
	cases := []struct {
		f    map[string][]string
		want bool
	}{
		{nil, true},
		{map[string][]string{"name": {"mul"}}, true},
		{map[string][]string{"name": {"other", "ult"}}, true},
		{map[string][]string{"name": {"other"}}, false},
		{map[string][]string{"id": {"abc"}}, true},
		{map[string][]string{"id": {"bcd"}}, false},
		{map[string][]string{"driver": {"bridge"}}, false},
		{map[string][]string{"scope": {"global"}, "driver": {"overlay"}}, true},
		{map[string][]string{"label": {"env=prod", "x"}}, true},
		{map[string][]string{"label": {"env=dev"}}, false},
		{map[string][]string{"type": {"custom"}}, true},
		{map[string][]string{"type": {"builtin"}}, false},
	}
	for _, c := range cases {
		if got := matchNetwork(n, c.f); got != c.want {
			t.Errorf("filters %v: got %v, want %v", c.f, got, c.want)
		}
	}
}
