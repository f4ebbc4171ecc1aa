package dockerplugin

// The wire: Docker's plugin protocol is JSON over HTTP POST, one path per
// call. Requests and responses are the types of docker/go-plugins-helpers
// (network, ipam); the handlers are ours, so that both drivers share one
// socket and every body is bounded before it is decoded. Unknown fields
// are ignored, as newer engines add some; an error is {"Err": "…"} with
// status 500, which dockerd shows as the reason of the failed command.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
)

// maxRequestBytes bounds a request body: the largest, CreateNetwork with
// its options, is a few kilobytes.
const maxRequestBytes = 1 << 20

// callTimeout bounds one call: dockerd gives up on a plugin after 30s, and
// an answer after that would be lost.
const callTimeout = 25 * time.Second

// manifest is the answer to Plugin.Activate.
const manifest = `{"Implements": ["NetworkDriver", "IpamDriver"]}`

// Handler returns the HTTP handler of the plugin's socket.
func (p *Plugin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
		_, _ = io.WriteString(w, manifest+"\n")
	})
	empty := func(context.Context, *struct{}) (*struct{}, error) { return &struct{}{}, nil }

	handle(mux, "NetworkDriver.GetCapabilities", func(context.Context, *struct{}) (*network.CapabilitiesResponse, error) {
		return &network.CapabilitiesResponse{Scope: network.LocalScope, ConnectivityScope: network.GlobalScope}, nil
	})
	handle(mux, "NetworkDriver.CreateNetwork", p.createNetwork)
	handle(mux, "NetworkDriver.DeleteNetwork", p.deleteNetwork)
	handle(mux, "NetworkDriver.AllocateNetwork", func(context.Context, *network.AllocateNetworkRequest) (*struct{}, error) {
		return nil, errors.New("meshnet networks are made with docker network create, not through Swarm")
	})
	handle(mux, "NetworkDriver.FreeNetwork", empty)
	handle(mux, "NetworkDriver.CreateEndpoint", p.createEndpoint)
	handle(mux, "NetworkDriver.DeleteEndpoint", p.deleteEndpoint)
	handle(mux, "NetworkDriver.EndpointOperInfo", p.endpointInfo)
	handle(mux, "NetworkDriver.Join", p.join)
	handle(mux, "NetworkDriver.Leave", p.leave)
	handle(mux, "NetworkDriver.DiscoverNew", empty)
	handle(mux, "NetworkDriver.DiscoverDelete", empty)
	handle(mux, "NetworkDriver.ProgramExternalConnectivity", p.programExternal)
	handle(mux, "NetworkDriver.RevokeExternalConnectivity", p.revokeExternal)

	handle(mux, "IpamDriver.GetCapabilities", func(context.Context, *struct{}) (*ipam.CapabilitiesResponse, error) {
		return &ipam.CapabilitiesResponse{RequiresMACAddress: false}, nil
	})
	handle(mux, "IpamDriver.GetDefaultAddressSpaces", func(context.Context, *struct{}) (*ipam.AddressSpacesResponse, error) {
		return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: addressSpace, GlobalDefaultAddressSpace: addressSpace}, nil
	})
	ip := ipamDriver{p}
	handle(mux, "IpamDriver.RequestPool", ip.requestPool)
	handle(mux, "IpamDriver.ReleasePool", ip.releasePool)
	handle(mux, "IpamDriver.RequestAddress", ip.requestAddress)
	handle(mux, "IpamDriver.ReleaseAddress", ip.releaseAddress)
	return mux
}

// handle serves one call: the body decoded into a Req (bounded), fn's
// answer or error encoded.
func handle[Req, Resp any](mux *http.ServeMux, call string, fn func(context.Context, *Req) (*Resp, error)) {
	mux.HandleFunc("POST /"+call, func(w http.ResponseWriter, r *http.Request) {
		req := new(Req)
		body := http.MaxBytesReader(w, r.Body, maxRequestBytes)
		if err := json.NewDecoder(body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
			fail(w, fmt.Errorf("%s: the request is not valid JSON of the plugin protocol", call))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		resp, err := fn(ctx, req)
		if err != nil {
			fail(w, err)
			return
		}
		sdk.EncodeResponse(w, resp, false)
	})
}

// fail answers with err's message, as Docker's plugin client expects.
func fail(w http.ResponseWriter, err error) {
	sdk.EncodeResponse(w, network.NewErrorResponse(err.Error()), true)
}
