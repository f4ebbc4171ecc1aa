package agent

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/kvstore"
)

// apiError is an error with the HTTP status the API answers it with. Its
// message is one sentence for the user.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{http.StatusNotFound, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return &apiError{http.StatusConflict, fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status: apiErrors say theirs, IPAM
// and store sentinels map to 400/409/503, anything else is a 500.
func statusOf(err error) int {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae.status
	case errors.Is(err, ipam.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ipam.ErrSubnetOverlap), errors.Is(err, ipam.ErrAddressInUse),
		errors.Is(err, ipam.ErrVNIInUse), errors.Is(err, ipam.ErrPoolExhausted):
		return http.StatusConflict
	case errors.Is(err, kvstore.ErrUnavailable), errors.Is(err, ipam.ErrContention),
		errors.Is(err, kvstore.ErrPermission):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// userMessage is err as the user sees it. Store failures say which store
// and that it is unreachable, without the client library's details.
func (a *Agent) userMessage(err error) string {
	var ae *apiError
	var down *storeDownError
	switch {
	case errors.As(err, &ae):
		return ae.msg
	case errors.As(err, &down):
		return down.Error()
	case errors.Is(err, kvstore.ErrPermission):
		return "the cluster store " + a.cfg.StoreURL + " refused the agent's credentials"
	case errors.Is(err, kvstore.ErrUnavailable):
		return "the cluster store " + a.cfg.StoreURL + " is unreachable; try again when it is back"
	}
	return err.Error()
}
