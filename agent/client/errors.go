package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"unicode"

	"github.com/meshnet/meshnet/agent/api"
)

// Error is the agent's refusal of a request: a non-2xx status and the
// message of its api.Error body. Its Error text is the message alone.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is the agent's 404: no such object.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsBadRequest reports whether err is the agent's 400: the request is
// malformed or asks for something the agent does not do.
func IsBadRequest(err error) bool { return hasStatus(err, http.StatusBadRequest) }

// IsConflict reports whether err is the agent's 409: name taken, in use.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsUnavailable reports whether err is the agent's 503: the cluster store
// is unreachable.
func IsUnavailable(err error) bool { return hasStatus(err, http.StatusServiceUnavailable) }

func hasStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// ErrUnreachable is matched (errors.Is) by the error of a call that could
// not connect to the agent at all.
var ErrUnreachable = errors.New("meshagent unreachable")

// reachError is a failed dial: a sentence for users, and the cause for
// errors.Is/As.
type reachError struct {
	msg   string
	cause error
}

func (e *reachError) Error() string   { return e.msg }
func (e *reachError) Unwrap() []error { return []error{ErrUnreachable, e.cause} }

// responseError builds the *Error of a non-2xx response. A body that is not
// an api.Error still gives a readable message: the status, and the body
// when it is one short line of text (such as "404 page not found" from a
// server that is not meshagent, or an older one).
func responseError(resp *http.Response, body []byte) error {
	var apiErr api.Error
	if err := json.Unmarshal(body, &apiErr); err == nil {
		if msg := strings.TrimSpace(apiErr.Message); msg != "" {
			return &Error{Status: resp.StatusCode, Message: msg}
		}
	}
	msg := fmt.Sprintf("meshagent answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if text := strings.TrimSpace(string(body)); mediaType == "text/plain" && isShortLine(text) {
		msg += ": " + text
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}

func isShortLine(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// malformed is the error of a 2xx response the client cannot use.
func malformed(method, path, why string) error {
	return fmt.Errorf("malformed response from meshagent to %s %s: %s", method, path, why)
}
