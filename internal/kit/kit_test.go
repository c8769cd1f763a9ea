package kit_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ssekit/sse/internal/kit"
)

// mod is a module that records its Init and mount calls in a shared log.
type mod struct {
	name string
	deps []string
}

func (m *mod) Name() string           { return m.name }
func (m *mod) Dependencies() []string { return m.deps }

// mountAll mounts r, logging "init x" and "mount x", and returns the log.
func mountAll(r *kit.Registry[*mod], initErr, mountErr error) ([]string, error) {
	var log []string
	err := r.Mount(func(m *mod, deps map[string]*mod) error {
		for _, d := range m.deps {
			if deps[d] == nil || deps[d].name != d {
				return errors.New("dependency not given")
			}
		}
		log = append(log, "init "+m.name)
		return initErr
	}, func(m *mod) error {
		log = append(log, "mount "+m.name)
		return mountErr
	})
	return log, err
}

func TestMountOrdersByDependencies(t *testing.T) {
	t.Parallel()
	var r kit.Registry[*mod]
	// Registered before their dependencies: order comes from Dependencies,
	// registration order among independent modules.
	for _, m := range []*mod{{name: "c", deps: []string{"b", "a"}}, {name: "b", deps: []string{"a"}}, {name: "a"}, {name: "z"}} {
		if err := r.Register(m); err != nil {
			t.Fatal(err)
		}
	}
	log, err := mountAll(&r, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"init a", "init b", "init c", "init z", "mount a", "mount b", "mount c", "mount z"}
	if !slices.Equal(log, want) {
		t.Fatalf("log %v, want %v", log, want)
	}
	if m, ok := r.Get("b"); !ok || m.name != "b" {
		t.Fatal("Get b")
	}
	if _, ok := r.Get("zz"); ok {
		t.Fatal("Get zz")
	}
}

func TestRegistryErrors(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name              string
		modules           []*mod
		initErr, mountErr error
		want              error
	}{
		{name: "cycle", modules: []*mod{{name: "a", deps: []string{"b"}}, {name: "b", deps: []string{"a"}}}, want: kit.ErrCycle},
		{name: "self cycle", modules: []*mod{{name: "a", deps: []string{"a"}}}, want: kit.ErrCycle},
		{name: "missing", modules: []*mod{{name: "a", deps: []string{"ghost"}}}, want: kit.ErrMissing},
		{name: "init fails", modules: []*mod{{name: "a"}}, initErr: boom, want: boom},
		{name: "mount fails", modules: []*mod{{name: "a"}}, mountErr: boom, want: boom},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var r kit.Registry[*mod]
			for _, m := range tc.modules {
				if err := r.Register(m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := mountAll(&r, tc.initErr, tc.mountErr); !errors.Is(err, tc.want) {
				t.Fatalf("Mount: %v, want %v", err, tc.want)
			}
			// A failed Mount leaves the registry unmounted: fixed, it mounts.
			if err := r.Register(&mod{name: "late"}); err != nil {
				t.Fatalf("register after a failed mount: %v", err)
			}
		})
	}
	var r kit.Registry[*mod]
	if err := r.Register(&mod{name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(&mod{name: "a"}); !errors.Is(err, kit.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := mountAll(&r, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(&mod{name: "b"}); !errors.Is(err, kit.ErrMounted) {
		t.Fatalf("register after mount: %v", err)
	}
	if _, err := mountAll(&r, nil, nil); !errors.Is(err, kit.ErrMounted) {
		t.Fatalf("second mount: %v", err)
	}
}

func TestMethod(t *testing.T) {
	t.Parallel()
	if m, err := kit.Method("get", "/x"); err != nil || m != "GET" {
		t.Fatalf("Method(get) = %q, %v", m, err)
	}
	if _, err := kit.Method("BREW", "/x"); err == nil {
		t.Fatal("Method(BREW) accepted")
	}
}
