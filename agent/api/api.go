// Package api holds the types of meshagent's HTTP API (docs/design.md §3):
// JSON over HTTP/1.1 on the agent's unix socket, shaped like Docker's
// Engine API so that its users recognise the fields. The server (agent)
// and the client (agent/client, agentctl) share these types and nothing
// else.
//
// Routes:
//
//	GET    /networks                          → []Network   (?filters={"name":["x"],…} like Docker)
//	POST   /networks/create   NetworkCreate   → CreateResponse (201)
//	GET    /networks/{id-or-name}             → Network
//	DELETE /networks/{id-or-name}             → 204
//	POST   /networks/{id-or-name}/connect     NetworkConnect    → 200
//	POST   /networks/{id-or-name}/disconnect  NetworkDisconnect → 200
//	POST   /networks/prune                    → PruneResponse
//	GET    /sandboxes                         → []Sandbox
//	POST   /sandboxes/create  SandboxCreate   → CreateResponse (201)
//	GET    /sandboxes/{id-or-name}            → Sandbox
//	DELETE /sandboxes/{id-or-name}[?force=1]  → 204
//	POST   /sandboxes/{id-or-name}/publish SandboxPublish → Sandbox
//	POST   /endpoints/create  EndpointCreate  → Endpoint (201)
//	GET    /endpoints/{id}                    → Endpoint
//	POST   /endpoints/{id}/join EndpointJoin  → Endpoint
//	POST   /endpoints/{id}/leave              → 204
//	POST   /endpoints/{id}/update EndpointUpdate → Endpoint
//	POST   /endpoints/{id}/check  EndpointCheck  → 204
//	DELETE /endpoints/{id}                    → 204
//	POST   /cni/add           CNIAdd          → CNIResult (201)
//	POST   /cni/check         CNICheck        → CNIResult
//	POST   /cni/del           CNIDel          → 204 (also when nothing is attached)
//	POST   /cni/gc            CNIGC           → CNIGCResult
//	GET    /cni/status?network=NAME           → 204, or why ADD would fail now
//	GET    /nodes                             → []Node
//	GET    /info                              → Info
//	GET    /version                           → Version
//	GET    /metrics                           → Prometheus text format
//
// Errors are Error with 400 (bad input), 404 (no such object), 409
// (conflict: name taken, in use), 503 (cluster store unreachable) or 500.
// Request bodies are at most MaxBodyBytes and decoded strictly: unknown
// fields and trailing data are refused.
package api

import "time"

// Version is the API version this package describes.
const Version = "1.0"

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// Error is the body of every non-2xx response.
type Error struct {
	Message string `json:"message"`
}

// Scopes and drivers.
const (
	ScopeLocal  = "local"
	ScopeGlobal = "global"

	DriverOverlay = "overlay"
	DriverBridge  = "bridge"
	DriverNull    = "null"
	DriverHost    = "host"
)

// Network is a network as GET /networks and /networks/{id} return it.
type Network struct {
	Name       string            `json:"Name"`
	ID         string            `json:"Id"`
	Created    time.Time         `json:"Created"`
	Scope      string            `json:"Scope"`
	Driver     string            `json:"Driver"`
	EnableIPv6 bool              `json:"EnableIPv6"`
	IPAM       IPAM              `json:"IPAM"`
	Internal   bool              `json:"Internal"`
	Attachable bool              `json:"Attachable"`
	Ingress    bool              `json:"Ingress"`
	ConfigFrom ConfigReference   `json:"ConfigFrom"`
	ConfigOnly bool              `json:"ConfigOnly"`
	Options    map[string]string `json:"Options"`
	Labels     map[string]string `json:"Labels"`
	// VNI is the overlay network's VXLAN id (0 for other drivers).
	VNI uint32 `json:"VNI,omitempty"`
	// MTU of the network's interfaces.
	MTU int `json:"MTU,omitempty"`
	// Containers are the network's endpoints on every host, by endpoint
	// id (Docker's name for the field; here they are sandboxes).
	Containers map[string]EndpointResource `json:"Containers"`
}

// IPAM is a network's address management.
type IPAM struct {
	Driver  string            `json:"Driver"`
	Options map[string]string `json:"Options"`
	Config  []IPAMConfig      `json:"Config"`
}

// IPAMConfig is one subnet of a network. Addresses are strings as in
// Docker; the server validates them.
type IPAMConfig struct {
	Subnet     string            `json:"Subnet,omitempty"`
	IPRange    string            `json:"IPRange,omitempty"`
	Gateway    string            `json:"Gateway,omitempty"`
	AuxAddress map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

// ConfigReference names the config-only network a network takes its
// configuration from.
type ConfigReference struct {
	Network string `json:"Network"`
}

// EndpointResource is one endpoint of a network.
type EndpointResource struct {
	Name        string   `json:"Name"` // the sandbox's name
	EndpointID  string   `json:"EndpointID"`
	MacAddress  string   `json:"MacAddress"`
	IPv4Address string   `json:"IPv4Address"` // CIDR form
	IPv6Address string   `json:"IPv6Address"`
	Node        string   `json:"Node"` // the host it lives on
	Aliases     []string `json:"Aliases,omitempty"`
	// DNSNames are the names the endpoint answers to on the network's
	// embedded DNS (none on networks without service discovery).
	DNSNames []string `json:"DNSNames,omitempty"`
	// ContainerID is the CNI container id of a sandbox made by the CNI
	// plugin (this host's endpoints only).
	ContainerID string `json:"ContainerID,omitempty"`
}

// NetworkCreate is the body of POST /networks/create.
type NetworkCreate struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"` // default "bridge", like Docker
	Scope      string            `json:"Scope"`  // "" means the driver's scope
	EnableIPv6 bool              `json:"EnableIPv6"`
	IPAM       *IPAM             `json:"IPAM"`
	Internal   bool              `json:"Internal"`
	Attachable bool              `json:"Attachable"`
	Ingress    bool              `json:"Ingress"`
	ConfigOnly bool              `json:"ConfigOnly"`
	ConfigFrom *ConfigReference  `json:"ConfigFrom"`
	Options    map[string]string `json:"Options"`
	Labels     map[string]string `json:"Labels"`
}

// CreateResponse answers POST /networks/create and /sandboxes/create.
type CreateResponse struct {
	ID      string `json:"Id"`
	Warning string `json:"Warning,omitempty"`
}

// PruneResponse answers POST /networks/prune.
type PruneResponse struct {
	NetworksDeleted []string `json:"NetworksDeleted"`
}

// NetworkConnect is the body of POST /networks/{id}/connect.
type NetworkConnect struct {
	Container      string           `json:"Container"` // sandbox id or name
	EndpointConfig *EndpointRequest `json:"EndpointConfig"`
}

// EndpointRequest asks for an endpoint's addresses and names.
type EndpointRequest struct {
	IPAMConfig *EndpointIPAMConfig `json:"IPAMConfig"`
	Aliases    []string            `json:"Aliases"`
	Links      []string            `json:"Links"` // SANDBOX:ALIAS
	// MacAddress asks for the interface's MAC (default: derived from
	// its IPv4 address).
	MacAddress string `json:"MacAddress,omitempty"`
	// Interface names the interface in the sandbox (default: the first
	// free ethN).
	Interface string `json:"Interface,omitempty"`
}

// EndpointIPAMConfig holds requested addresses.
type EndpointIPAMConfig struct {
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// NetworkDisconnect is the body of POST /networks/{id}/disconnect.
type NetworkDisconnect struct {
	Container string `json:"Container"`
	Force     bool   `json:"Force"`
}

// Sandbox is a sandbox as GET /sandboxes and /sandboxes/{id} return it.
type Sandbox struct {
	ID       string    `json:"Id"`
	Name     string    `json:"Name"`
	Created  time.Time `json:"Created"`
	Hostname string    `json:"Hostname"`
	// NetNS is the namespace's path: /run/netns/NAME, or the path given
	// with --netns (External).
	NetNS    string `json:"NetNS"`
	External bool   `json:"External"`
	// ContainerID is the container id a CNI runtime gave (the sandbox was
	// made by the CNI plugin), else empty.
	ContainerID string `json:"ContainerID,omitempty"`
	// NetworkMode is "host" or "container:NAME" for a sandbox that uses
	// another namespace, else empty.
	NetworkMode string `json:"NetworkMode,omitempty"`
	Node        string `json:"Node"`
	// Networks are the sandbox's endpoints by network name.
	Networks  map[string]EndpointSettings `json:"Networks"`
	DNS       []string                    `json:"Dns"`
	DNSOpts   []string                    `json:"DnsOptions"`
	DNSSearch []string                    `json:"DnsSearch"`
	// Ports are the published ports, by "PORT/PROTO" (Docker's
	// NetworkSettings.Ports).
	Ports map[string][]PortBinding `json:"Ports"`
	// Resolver is what the sandbox's resolv.conf says: the nameservers
	// (127.0.0.11 for the embedded DNS), search domains and options.
	Resolver DNSConfig `json:"Resolver"`
}

// DNSConfig is a resolver configuration.
type DNSConfig struct {
	Nameservers []string `json:"Nameservers"`
	Search      []string `json:"Search"`
	Options     []string `json:"Options"`
}

// PortBinding is the host side of a published port.
type PortBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string `json:"HostPort"`
}

// EndpointSettings is one of a sandbox's endpoints.
type EndpointSettings struct {
	NetworkID   string   `json:"NetworkID"`
	EndpointID  string   `json:"EndpointID"`
	Interface   string   `json:"Interface"` // eth0, eth1, …
	MacAddress  string   `json:"MacAddress"`
	IPAddress   string   `json:"IPAddress"`
	IPPrefixLen int      `json:"IPPrefixLen"`
	Gateway     string   `json:"Gateway"`
	IPv6Address string   `json:"GlobalIPv6Address"`
	IPv6Prefix  int      `json:"GlobalIPv6PrefixLen"`
	IPv6Gateway string   `json:"IPv6Gateway"`
	Aliases     []string `json:"Aliases"`
	Links       []string `json:"Links"`
	// DNSNames are the names the endpoint answers to on the network's
	// embedded DNS (none on networks without service discovery).
	DNSNames []string `json:"DNSNames,omitempty"`
	// MTU is the interface's MTU.
	MTU int `json:"MTU,omitempty"`
	// DefaultRoute: the sandbox's default route goes through this
	// interface.
	DefaultRoute bool `json:"DefaultRoute,omitempty"`
}

// SandboxCreate is the body of POST /sandboxes/create. Networks are
// attached in order (eth0, eth1, …); none at all means the default
// bridge network, and the single network "none" means loopback only.
type SandboxCreate struct {
	Name       string              `json:"Name"`
	Hostname   string              `json:"Hostname"`
	NetNS      string              `json:"NetNS"` // adopt an existing namespace
	Networks   []NetworkAttachment `json:"Networks"`
	DNS        []string            `json:"Dns"`
	DNSOpts    []string            `json:"DnsOptions"`
	DNSSearch  []string            `json:"DnsSearch"`
	Publish    []string            `json:"Publish"` // [HOSTIP:]HOSTPORT:PORT[/PROTO]
	PublishAll bool                `json:"PublishAll"`
	Expose     []string            `json:"Expose"`
	// ContainerID marks a sandbox made for a container of another
	// runtime (with NetNS): its endpoints are told apart by interface
	// name, and its namespace is the runtime's to delete.
	ContainerID string `json:"ContainerID,omitempty"`
	// Handoff: the runtime moves interfaces into the namespace itself
	// (Docker's remote drivers), and NetNS may not exist yet. The agent
	// never looks inside it, never reaps the sandbox (the runtime leaves
	// its endpoints), and its endpoints join with EndpointJoin.Handoff.
	Handoff bool `json:"Handoff,omitempty"`
}

// NetworkAttachment is one network of a new sandbox.
type NetworkAttachment struct {
	Network string   `json:"Network"` // id or name, "none", "host", "bridge", "container:NAME"
	IP      string   `json:"IP"`
	IP6     string   `json:"IP6"`
	Aliases []string `json:"Aliases"`
	Links   []string `json:"Links"`
	// MacAddress and Interface as in EndpointRequest.
	MacAddress string `json:"MacAddress,omitempty"`
	Interface  string `json:"Interface,omitempty"`
}

// EndpointCreate is the body of POST /endpoints/create: an endpoint on a
// network, its addresses leased, not yet in any sandbox.
type EndpointCreate struct {
	Network string   `json:"Network"` // id or name
	Name    string   `json:"Name"`    // what peers and inspect call it (a sandbox's or container's name)
	IP      string   `json:"IP"`      // requested IPv4 address
	IP6     string   `json:"IP6"`     // requested IPv6 address
	Aliases []string `json:"Aliases"`
	// MacAddress asks for the interface's MAC (default: derived from
	// its IPv4 address).
	MacAddress string `json:"MacAddress,omitempty"`
}

// EndpointJoin is the body of POST /endpoints/{id}/join: the sandbox of
// this host the endpoint goes into, and optionally the interface name it
// gets there (default: the first free ethN).
type EndpointJoin struct {
	Sandbox   string `json:"Sandbox"` // id or name
	Interface string `json:"Interface"`
	// Handoff: the runtime moves the interface into the sandbox itself
	// (Docker's remote drivers). The agent makes the pair with the
	// sandbox end named Interface in the host namespace, and never looks
	// inside the sandbox; the runtime names it there and sets its
	// addresses and routes.
	Handoff bool `json:"Handoff,omitempty"`
}

// SandboxPublish is the body of POST /sandboxes/{id}/publish: the ports
// the sandbox publishes from now on (-p values; none unpublishes).
type SandboxPublish struct {
	Publish []string `json:"Publish"`
}

// EndpointUpdate is the body of POST /endpoints/{id}/update: the names
// the endpoint answers to on its network's DNS, given by a runtime that
// learns them after the endpoint was made (Docker's container name and
// --network-alias).
type EndpointUpdate struct {
	Name    string   `json:"Name"`
	Aliases []string `json:"Aliases"`
}

// Endpoint is an endpoint of this host.
type Endpoint struct {
	ID          string   `json:"Id"`
	Name        string   `json:"Name"`
	NetworkID   string   `json:"NetworkID"`
	Network     string   `json:"Network"` // its name
	Sandbox     string   `json:"Sandbox"` // the sandbox's name while joined, else ""
	Interface   string   `json:"Interface"`
	MacAddress  string   `json:"MacAddress"`
	IPv4Address string   `json:"IPv4Address"` // CIDR form
	IPv6Address string   `json:"IPv6Address"`
	Gateway     string   `json:"Gateway"`
	IPv6Gateway string   `json:"IPv6Gateway"`
	MTU         int      `json:"MTU,omitempty"`
	Aliases     []string `json:"Aliases"`
	Node        string   `json:"Node"`
}

// EndpointCheck is the body of POST /endpoints/{id}/check.
type EndpointCheck struct {
	// NetNS, if given, is the namespace the endpoint's sandbox must be.
	NetNS string `json:"NetNS"`
}

// CNIAttachment names what a CNI runtime attaches: a container's
// interface. The agent keys its CNI sandboxes' endpoints by it.
type CNIAttachment struct {
	ContainerID string `json:"ContainerID"`
	IfName      string `json:"IfName"`
}

// CNIAdd is the body of POST /cni/add: put the container's namespace on
// the network under IfName.
type CNIAdd struct {
	CNIAttachment
	NetNS   string `json:"NetNS"`   // the container's namespace (a path)
	Network string `json:"Network"` // id or name
	// Name is the container's name (CNI_ARGS K8S_POD_NAME), its sandbox's
	// name and DNS name when free; "" means its short id.
	Name    string           `json:"Name"`
	IP      string           `json:"IP"`  // requested IPv4 address
	IP6     string           `json:"IP6"` // requested IPv6 address
	MAC     string           `json:"MAC"` // requested MAC address
	Aliases []string         `json:"Aliases"`
	Ports   []CNIPortMapping `json:"Ports"` // published on the first ADD of the container
}

// CNIPortMapping is one entry of the portMappings runtime capability.
type CNIPortMapping struct {
	HostPort      int    `json:"HostPort"`
	ContainerPort int    `json:"ContainerPort"`
	Protocol      string `json:"Protocol"` // tcp (default) or udp
	HostIP        string `json:"HostIP"`
}

// CNICheck is the body of POST /cni/check.
type CNICheck struct {
	CNIAttachment
	NetNS   string `json:"NetNS"`
	Network string `json:"Network"`
}

// CNIDel is the body of POST /cni/del.
type CNIDel struct {
	CNIAttachment
	Network string `json:"Network"`
}

// CNIResult describes an attachment as a CNI result does.
type CNIResult struct {
	Interface   string `json:"Interface"`
	MacAddress  string `json:"MacAddress"`
	NetNS       string `json:"NetNS"`
	IPv4Address string `json:"IPv4Address"` // CIDR form
	Gateway     string `json:"Gateway"`
	IPv6Address string `json:"IPv6Address"`
	IPv6Gateway string `json:"IPv6Gateway"`
	// DefaultRoute: the interface carries the container's default routes.
	DefaultRoute bool `json:"DefaultRoute"`
	MTU          int  `json:"MTU"`
	// DNS is the resolver configuration a runtime should give the
	// container (127.0.0.11 on networks with the embedded DNS).
	DNS DNSConfig `json:"DNS"`
}

// CNIGC is the body of POST /cni/gc: every CNI attachment of the network
// on this host that is not in Valid is released.
type CNIGC struct {
	Network string          `json:"Network"`
	Valid   []CNIAttachment `json:"Valid"`
}

// CNIGCResult lists what a GC released.
type CNIGCResult struct {
	Released []CNIAttachment `json:"Released"`
}

// Node is a member of the cluster.
type Node struct {
	Name       string   `json:"Name"`
	Address    string   `json:"Address"` // VTEP and gossip address
	GossipPort int      `json:"GossipPort"`
	Version    string   `json:"Version"`
	State      string   `json:"State"` // alive, suspect, left, failed, registered (in the store, not yet in gossip)
	Self       bool     `json:"Self"`
	Networks   []string `json:"Networks"` // names of networks with endpoints on the node
}

// JoinToken answers GET /cluster/join-token and POST
// /cluster/join-token/rotate: what another host needs to join a cluster
// whose store is this agent's embedded one.
type JoinToken struct {
	Token string `json:"Token"`
	Store string `json:"Store"` // cluster-store the joining host gives, etcd://HOST:2379
}

// Info answers GET /info.
type Info struct {
	Node             string `json:"Node"`
	Version          string `json:"Version"`
	ClusterStore     string `json:"ClusterStore"`
	ClusterAdvertise string `json:"ClusterAdvertise"`
	StoreStatus      string `json:"StoreStatus"` // "ok" or why not
	DataDir          string `json:"DataDir"`
	Networks         int    `json:"Networks"`
	Sandboxes        int    `json:"Sandboxes"`
	Nodes            int    `json:"Nodes"`
	// Warnings say where the configuration leaves the cluster open (no
	// gossip key, a store without TLS), one sentence each.
	Warnings []string `json:"Warnings,omitempty"`
}

// VersionInfo answers GET /version.
type VersionInfo struct {
	Version    string `json:"Version"`
	APIVersion string `json:"ApiVersion"`
	GoVersion  string `json:"GoVersion"`
	Os         string `json:"Os"`
	Arch       string `json:"Arch"`
	GitCommit  string `json:"GitCommit,omitempty"`
}
