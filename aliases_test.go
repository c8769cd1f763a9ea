package sse_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/ssekit/sse/internal/aliasgen"
)

// The aliases are generated from ssekit: a name added, changed or removed
// there and not regenerated (go generate .) fails here.
func TestAliasesMatchSsekit(t *testing.T) {
	want, err := aliasgen.Generate("ssekit", "github.com/ssekit/sse/ssekit", "sse")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("aliases.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("aliases.go is not what ssekit's API generates: run go generate . and commit it")
	}
}

// The hub and what builds on it compile no web framework, so an app on
// Echo v5 (or none) never compiles Echo v4.
func TestHubPackagesImportNoWebFramework(t *testing.T) {
	pkgs := []string{"./ssekit", "./redisbroker", "./sseclient"}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkgs[0], pkgs[1], pkgs[2]).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if strings.HasPrefix(dep, "github.com/labstack/") {
			t.Errorf("%v depend on %s", pkgs, dep)
		}
	}
}
