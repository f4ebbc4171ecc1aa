package apiserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshnet/meshnet/agent/api"
)

func decodeBody(body string) error {
	r := httptest.NewRequest(http.MethodPost, "/networks/create", strings.NewReader(body))
	var req api.NetworkCreate
	return decode(r, &req)
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ body, want string }{
		{`{"Name":"a"}`, ""},
		{``, "request body is empty; a JSON object is expected"},
		{`{"Name":"a"`, "request body is cut short: it is not complete JSON"},
		{`{"Name":"a",}`, "request body is not valid JSON (at byte 13)"},
		{`{"Name":5}`, "field Name must be a string, not number"},
		{`{"EnableIPv6":"yes"}`, "field EnableIPv6 must be true or false, not string"},
		{`[]`, "request body must be a JSON object"},
		{`{"Nmae":"a"}`, `unknown field "Nmae" in request body`},
		{`{"Name":"a"} {}`, "request body has data after the JSON object"},
		{`{"Name":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}`, "request body is larger than 1048576 bytes"},
	}
	for _, c := range cases {
		err := decodeBody(c.body)
		got := ""
		if err != nil {
			got = err.Error()
			if StatusOf(err) != http.StatusBadRequest {
				t.Errorf("%.40q: status %d, want 400", c.body, StatusOf(err))
			}
		}
		if got != c.want {
			t.Errorf("%.40q: got %q, want %q", c.body, got, c.want)
		}
	}
}

// FuzzDecode: any body is decoded or refused with one line of text and a
// 400, never a panic or a decoder message leaking through.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"Name":"a","Driver":"overlay"}`, `{"IPAM":{"Config":[{"Subnet":"10.0.0.0/24"}]}}`, `{`, `nul`, `{"Labels":{"a":1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		err := decodeBody(body)
		if err == nil {
			return
		}
		msg := err.Error()
		if StatusOf(err) != http.StatusBadRequest || strings.Contains(msg, "\n") || strings.Contains(msg, "json:") || !utf8.ValidString(msg) {
			t.Fatalf("body %q: bad refusal %q (status %d)", body, msg, StatusOf(err))
		}
	})
}

func TestParseFilters(t *testing.T) {
	f, err := parseFilters(`{"name":["multi"],"driver":{"overlay":true}}`)
	if err == nil {
		t.Fatalf("mixed forms accepted: %v", f)
	}
	f, err = parseFilters(`{"name":["multi"]}`)
	if err != nil || f["name"][0] != "multi" {
		t.Fatalf("got %v, %v", f, err)
	}
	f, err = parseFilters(`{"driver":{"overlay":true}}`)
	if err != nil || f["driver"][0] != "overlay" {
		t.Fatalf("got %v, %v", f, err)
	}
	if _, err := parseFilters(`nope`); err == nil || StatusOf(err) != 400 {
		t.Fatalf("bad filters: %v", err)
	}
}
