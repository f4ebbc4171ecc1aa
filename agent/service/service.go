// Package service is the one interface behind which meshagent's
// operations live (agent/controller implements it): the runtime adapters
// call it — the HTTP API (agent/apiserver), the CNI server
// (agent/cniserver) — and depend on nothing else of the agent. Its types
// are those of agent/api.
//
// Endpoints have a life of their own, as in libnetwork and in CNI:
// EndpointCreate leases an endpoint's addresses and records it;
// EndpointJoin plumbs it into a sandbox (veth, addresses, routes, and
// announces it to the cluster); EndpointLeave takes it out again and
// EndpointDelete gives its leases back. SandboxCreate composes them, and
// NetworkConnect/Disconnect do for one network what it does for several.
// Every operation either completes or rolls back what it did.
//
// Errors wrap one of the sentinels below, which say how a caller should
// answer them (the HTTP status); their message is one sentence for the
// user. Any other error is an internal failure.
package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshnet/meshnet/agent/api"
)

// Service is what a meshagent does. Every method is safe for concurrent
// use and returns by the deadline of its context (or the agent's own
// bound on an operation).
type Service interface {
	NetworkCreate(ctx context.Context, req api.NetworkCreate) (api.CreateResponse, error)
	// NetworkPlan checks req and returns the network NetworkCreate would
	// make now (its subnets picked), creating nothing and leasing
	// nothing: a NetworkCreate made later may find them taken.
	NetworkPlan(ctx context.Context, req api.NetworkCreate) (api.Network, error)
	NetworkList(ctx context.Context, filters map[string][]string) ([]api.Network, error)
	NetworkInspect(ctx context.Context, ref string) (api.Network, error)
	NetworkRemove(ctx context.Context, ref string) error
	NetworkPrune(ctx context.Context) (api.PruneResponse, error)
	NetworkConnect(ctx context.Context, ref string, req api.NetworkConnect) error
	NetworkDisconnect(ctx context.Context, ref string, req api.NetworkDisconnect) error
	// NetworkReady says why an endpoint could not be made on the network
	// now, if it could not: no such network, one that takes no
	// endpoints, or a global one while the cluster store is unreachable
	// (ErrUnavailable).
	NetworkReady(ctx context.Context, ref string) error

	EndpointCreate(ctx context.Context, req api.EndpointCreate) (api.Endpoint, error)
	EndpointInspect(ctx context.Context, id string) (api.Endpoint, error)
	EndpointJoin(ctx context.Context, id string, req api.EndpointJoin) (api.Endpoint, error)
	EndpointLeave(ctx context.Context, id string) error
	EndpointDelete(ctx context.Context, id string) error
	// EndpointUpdate renames an endpoint and replaces its aliases; a
	// joined one is announced again.
	EndpointUpdate(ctx context.Context, id string, req api.EndpointUpdate) (api.Endpoint, error)
	// EndpointCheck verifies a joined endpoint in the kernel: its
	// sandbox's namespace (the one at req.NetNS, if given) holds its
	// interface, up, with its MAC and addresses. ErrConflict says what
	// differs.
	EndpointCheck(ctx context.Context, id string, req api.EndpointCheck) error

	SandboxCreate(ctx context.Context, req api.SandboxCreate) (api.CreateResponse, error)
	// SandboxList lists the sandboxes matching filters (name, id,
	// container-id, network).
	SandboxList(ctx context.Context, filters map[string][]string) ([]api.Sandbox, error)
	SandboxInspect(ctx context.Context, ref string) (api.Sandbox, error)
	SandboxRemove(ctx context.Context, ref string, force bool) error
	// SandboxPublish replaces the ports the sandbox publishes (-p
	// values; none: unpublish) and returns the sandbox with its host
	// ports picked.
	SandboxPublish(ctx context.Context, ref string, publish []string) (api.Sandbox, error)

	Nodes(ctx context.Context) ([]api.Node, error)
	Info(ctx context.Context) (api.Info, error)
	Version() api.VersionInfo
	// Metrics gathers the agent's Prometheus metrics.
	Metrics() prometheus.Gatherer
}

// Cluster is the administration of the cluster's trust (agent/trust): the
// join token of the embedded store's CA, and the gossip keyring.
type Cluster interface {
	// JoinToken returns the join token, a new one if rotate (the old one
	// then joins no one). Only the agent serving the embedded store has
	// one (ErrConflict elsewhere).
	JoinToken(ctx context.Context, rotate bool) (api.JoinToken, error)
	// RotateGossipKey replaces the cluster's gossip key without a
	// partition, taking a few seconds.
	RotateGossipKey(ctx context.Context) error
}

// The kinds of refusal.
var (
	// ErrInvalid: the request is malformed or asks for something the
	// agent does not do. HTTP 400.
	ErrInvalid = errors.New("invalid request")
	// ErrForbidden: the object may not be changed (a predefined
	// network). HTTP 403.
	ErrForbidden = errors.New("forbidden")
	// ErrNotFound: no such network, sandbox or endpoint. HTTP 404.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the current state (a name
	// taken, a network in use, an address leased). HTTP 409.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the cluster store cannot be reached or lost too
	// many races; trying again later may work. HTTP 503.
	ErrUnavailable = errors.New("unavailable")
)

// Error is a refusal: a sentence for the user and its kind.
type Error struct {
	Kind error // one of the sentinels
	Msg  string
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Kind }

// Errorf returns an *Error of the kind with a formatted message.
func Errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Invalidf returns an ErrInvalid refusal.
func Invalidf(format string, args ...any) error { return Errorf(ErrInvalid, format, args...) }

// NotFoundf returns an ErrNotFound refusal.
func NotFoundf(format string, args ...any) error { return Errorf(ErrNotFound, format, args...) }

// Conflictf returns an ErrConflict refusal.
func Conflictf(format string, args ...any) error { return Errorf(ErrConflict, format, args...) }

// Unavailablef returns an ErrUnavailable refusal.
func Unavailablef(format string, args ...any) error { return Errorf(ErrUnavailable, format, args...) }
