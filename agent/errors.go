package agent

import (
	"context"
	"errors"

	"github.com/meshnet/meshnet/agent/driver"
	"github.com/meshnet/meshnet/agent/ipam"
	"github.com/meshnet/meshnet/agent/netstore"
	"github.com/meshnet/meshnet/agent/service"
	"github.com/meshnet/meshnet/kvstore"
)

func badRequest(format string, args ...any) error {
	return service.Errorf(service.ErrInvalid, format, args...)
}

func notFound(format string, args ...any) error {
	return service.Errorf(service.ErrNotFound, format, args...)
}

func conflict(format string, args ...any) error {
	return service.Errorf(service.ErrConflict, format, args...)
}

// storeDownError is returned by global operations while the store is not
// usable.
type storeDownError struct{ cause error }

func (e *storeDownError) Error() string {
	return "the cluster store is unreachable: " + e.cause.Error()
}
func (e *storeDownError) Unwrap() error { return kvstore.ErrUnavailable }

// serviceError gives an error of the layers below the kind the service
// answers it with (service.Error), keeping or writing its one-sentence
// message. Store failures say which store and that it is unreachable,
// without the client library's details. Errors of no known kind are
// internal failures and pass unchanged.
func (a *Agent) serviceError(err error) error {
	var (
		se   *service.Error
		down *storeDownError
	)
	kind := func(k error) error { return &service.Error{Kind: k, Msg: err.Error()} }
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return err
	case errors.As(err, &down):
		return kind(service.ErrUnavailable)
	case errors.Is(err, driver.ErrInvalid), errors.Is(err, ipam.ErrInvalid):
		return kind(service.ErrInvalid)
	case errors.Is(err, netstore.ErrNotFound):
		return kind(service.ErrNotFound)
	case errors.Is(err, ipam.ErrSubnetOverlap), errors.Is(err, ipam.ErrAddressInUse),
		errors.Is(err, ipam.ErrVNIInUse), errors.Is(err, ipam.ErrPoolExhausted),
		errors.Is(err, netstore.ErrNameTaken), errors.Is(err, netstore.ErrRemoving):
		return kind(service.ErrConflict)
	case errors.Is(err, ipam.ErrContention):
		return kind(service.ErrUnavailable)
	case errors.Is(err, kvstore.ErrPermission):
		return service.Errorf(service.ErrUnavailable, "the cluster store %s refused the agent's credentials", a.cfg.StoreURL)
	case errors.Is(err, kvstore.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return service.Errorf(service.ErrUnavailable, "the cluster store %s is unreachable; try again when it is back", a.cfg.StoreURL)
	}
	return err
}
