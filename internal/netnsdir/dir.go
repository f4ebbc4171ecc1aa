// Package netnsdir prepares /run/netns, where named network namespaces
// are bind-mounted, the way iproute2 does. Both the agent's sandboxes and
// the test environment's namespace hosts use it: whoever comes first must
// make the directory a shared mount point before mounting anything in it,
// or a later bind of the directory onto itself hides the earlier mounts,
// which can then never be deleted.
package netnsdir

// Dir holds the named network namespaces, one file per namespace.
const Dir = "/run/netns"
