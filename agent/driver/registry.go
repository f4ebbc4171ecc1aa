package driver

import (
	"slices"
	"strings"
)

// Registry holds the drivers an agent has, by name. It is built once at
// start and only read afterwards, so it is safe for concurrent use.
type Registry struct {
	byName     map[string]Driver
	order      []string
	def        string
	configOnly string
}

// NewRegistry returns a registry of drivers. def names the driver of a
// network created without -d, configOnly the driver config-only networks
// are recorded under (Docker's null).
func NewRegistry(def, configOnly string, drivers ...Driver) *Registry {
	r := &Registry{byName: map[string]Driver{}, def: def, configOnly: configOnly}
	for _, d := range drivers {
		r.byName[d.Name()] = d
		r.order = append(r.order, d.Name())
	}
	return r
}

// Get returns the driver called name ("" means the default one), or an
// ErrInvalid naming the drivers there are.
func (r *Registry) Get(name string) (Driver, error) {
	if name == "" {
		name = r.def
	}
	if d, ok := r.byName[name]; ok {
		return d, nil
	}
	return nil, Invalid("unknown network driver %q: meshnet has %s", name, r.names())
}

// ConfigOnly names the driver config-only networks are recorded under.
func (r *Registry) ConfigOnly() string { return r.configOnly }

// Lookup returns the driver called name, if there is one.
func (r *Registry) Lookup(name string) (Driver, bool) {
	d, ok := r.byName[name]
	return d, ok
}

// All returns the drivers in the order they were registered.
func (r *Registry) All() []Driver {
	out := make([]Driver, 0, len(r.order))
	for _, n := range r.order {
		out = append(out, r.byName[n])
	}
	return out
}

// AllOptions lists every option some driver knows, for a config-only
// network (whose options are checked when a network uses them).
func (r *Registry) AllOptions() []string {
	var out []string
	for _, d := range r.All() {
		out = append(out, d.Options()...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// names renders the driver names for a message: "a, b and c".
func (r *Registry) names() string {
	n := slices.Clone(r.order)
	switch len(n) {
	case 0:
		return "no drivers"
	case 1:
		return n[0]
	}
	return strings.Join(n[:len(n)-1], ", ") + " and " + n[len(n)-1]
}
