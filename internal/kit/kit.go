// Package kit is the framework-free half of the module kits, core (Echo
// v4) and echo5/core (Echo v5): registering modules by unique name,
// ordering them by their dependencies, finding cycles and missing
// dependencies, and initializing them in that order. Each kit adds what
// its Echo major needs: the Module and Route types, and how a route and a
// module's middleware are mounted.
package kit

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Errors from Register and Mount, the values both kits export.
var (
	ErrMounted   = errors.New("core: kit already mounted")
	ErrDuplicate = errors.New("core: module already registered")
	ErrCycle     = errors.New("core: dependency cycle")
	ErrMissing   = errors.New("core: dependency not registered")
)

// Module is what the registry needs to know of a kit's module.
type Module interface {
	Name() string
	Dependencies() []string
}

// Registry holds a kit's modules until, and after, it mounts them. It is
// meant to be used from one goroutine at start-up, like the kits.
type Registry[M Module] struct {
	modules map[string]M
	order   []string // registration order, for deterministic mounting
	mounted bool
}

// Register adds m. Its dependencies may be registered later, up to Mount.
func (r *Registry[M]) Register(m M) error {
	name := m.Name()
	if r.mounted {
		return fmt.Errorf("%w: cannot register %q", ErrMounted, name)
	}
	if _, dup := r.modules[name]; dup {
		return fmt.Errorf("%w: %q", ErrDuplicate, name)
	}
	if r.modules == nil {
		r.modules = make(map[string]M)
	}
	r.modules[name] = m
	r.order = append(r.order, name)
	return nil
}

// Get returns the module called name, and whether there is one.
func (r *Registry[M]) Get(name string) (M, bool) {
	m, ok := r.modules[name]
	return m, ok
}

// Mount calls init for every module, after its dependencies and with
// them, then mount for every module in the same order. It fails on a
// missing dependency, a cycle, or an error of init or mount (wrapped with
// the module's name), and runs once: the registry is mounted only when
// every call succeeded.
func (r *Registry[M]) Mount(init func(m M, deps map[string]M) error, mount func(m M) error) error {
	if r.mounted {
		return ErrMounted
	}
	order, err := r.sorted()
	if err != nil {
		return err
	}
	for _, m := range order {
		deps := make(map[string]M, len(m.Dependencies()))
		for _, d := range m.Dependencies() {
			deps[d] = r.modules[d]
		}
		if err := init(m, deps); err != nil {
			return fmt.Errorf("core: init %q: %w", m.Name(), err)
		}
	}
	for _, m := range order {
		if err := mount(m); err != nil {
			return fmt.Errorf("core: module %q: %w", m.Name(), err)
		}
	}
	r.mounted = true
	return nil
}

// Method returns method in upper case, or an error for a method the kits
// do not mount.
func Method(method, path string) (string, error) {
	upper := strings.ToUpper(method)
	switch upper {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodHead, http.MethodOptions:
		return upper, nil
	}
	return "", fmt.Errorf("unsupported method %q for %s", method, path)
}

// sorted returns the modules in dependency order (registration order
// among independent modules).
func (r *Registry[M]) sorted() ([]M, error) {
	const (
		visiting = 1
		done     = 2
	)
	state := make(map[string]int, len(r.modules))
	out := make([]M, 0, len(r.modules))
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("%w: %s", ErrCycle, strings.Join(append(path, name), " -> "))
		}
		m, ok := r.modules[name]
		if !ok {
			return fmt.Errorf("%w: %q needed by %q", ErrMissing, name, path[len(path)-1])
		}
		state[name] = visiting
		deps := slices.Clone(m.Dependencies())
		slices.Sort(deps)
		for _, d := range deps {
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = done
		out = append(out, m)
		return nil
	}
	for _, name := range r.order {
		if err := visit(name, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}
