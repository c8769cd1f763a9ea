package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The demo page runs the browser client from js/ (@ssekit/client) through
// a copy of its build that the binary embeds, since go:embed cannot reach
// ../../js. js's own tests check that js/dist is a fresh build of js/src;
// this one that the copy is js/dist's, so that neither can drift.
func TestWebClientIsTheJSBuild(t *testing.T) {
	t.Parallel()
	embedded, err := webFS.ReadFile("web/ssekit-client.js")
	if err != nil {
		t.Fatal(err)
	}
	built, err := os.ReadFile(filepath.Join("..", "..", "js", "dist", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(embedded, built) {
		t.Fatalf("cmd/ssehub/web/ssekit-client.js (%d bytes) differs from js/dist/index.js (%d bytes): run `npm run build` in js/", len(embedded), len(built))
	}
	app, err := webFS.ReadFile("web/app.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(app, []byte(`from "./ssekit-client.js"`)) {
		t.Fatal("web/app.js does not import ./ssekit-client.js: the demo page would not run the client")
	}
}

// The page loads app.js as a module, which a browser runs only when it is
// served as JavaScript; app.js imports the client from /assets/ too.
func TestWebClientServed(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	(&app{}).demoRoutes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	index := webGet(t, srv.URL+"/")
	if want := `<script type="module" src="/assets/app.js">`; !strings.Contains(index, want) {
		t.Fatalf("index.html does not load %s", want)
	}
	for _, path := range []string{"/assets/app.js", "/assets/ssekit-client.js"} {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", path, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Fatalf("GET %s: Content-Type %q, want text/javascript", path, ct)
		}
		if res.Header.Get("Content-Security-Policy") != demoCSP {
			t.Fatalf("GET %s: no demo CSP", path)
		}
	}
}

// webGet returns the body of a GET that must answer 200.
func webGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, res.StatusCode)
	}
	return string(b)
}
