# The targets .ci/run and the README use. `make test` installs nothing
# system-wide except what e2e/run.sh needs for the browser test (Debian's
# chromium, npm packages from e2e/package-lock.json).

GO ?= go
# staticcheck, pinned: make lint runs this version whatever is installed.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: run test test-go test-js test-e2e lint bench bench-peers fuzz

## run: the standalone hub in dev mode (generated secrets, in memory) with the demo page on 127.0.0.1:8080
run:
	$(GO) run ./cmd/ssehub --dev

## test: every test — Go (race detector on), the browser client's package (js/), then the browser and Node clients
test: test-go test-js test-e2e

# The hub packages run twice: the second time every test hub serves its
# streams detached from net/http (Config.DetachStreams).
test-go:
	$(GO) test -race -count=1 ./...
	SSEKIT_TEST_DETACH=1 $(GO) test -race -count=1 . ./echo5/... ./ssekit

# The browser client's own tests (node --test: logic, build, size, npm pack,
# React hook), with the npm packages pinned in js/package-lock.json.
test-js:
	cd js && npm ci --no-audit --no-fund --loglevel=error && npm test

test-e2e:
	bash e2e/run.sh

## lint: gofmt, go vet and staticcheck (pinned) must be silent
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

## bench: the Go micro-benchmarks (encode, SendToUser, SendToAll, parser)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## bench-peers: ssekit and ssehub side by side with Centrifugo, r3labs, tmaxmax, alexandrevicenzi and a seed-style hub (about an hour); see docs/PERFORMANCE.md
bench-peers:
	bash scripts/bench-peers.sh

## fuzz: each fuzz target for FUZZTIME (default 50000x: a count of
## inputs, not a duration — Go 1.26's fuzz coordinator can report a bogus
## "context deadline exceeded" when a duration ends, go.dev/issue/75804);
## minimizing a new input is bounded by a count too, so that it never stalls
## the run. A failure leaves its input under the package's testdata/fuzz/,
## to be committed with the fix.
FUZZTIME ?= 50000x
FUZZFLAGS = -fuzztime $(FUZZTIME) -fuzzminimizetime 500x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzEncode$$' $(FUZZFLAGS) .
	$(GO) test -run '^$$' -fuzz '^FuzzCompareIDs$$' $(FUZZFLAGS) .
	$(GO) test -run '^$$' -fuzz '^FuzzLastEventID$$' $(FUZZFLAGS) .
	$(GO) test -run '^$$' -fuzz '^FuzzDecoder$$' $(FUZZFLAGS) ./sseclient
	$(GO) test -run '^$$' -fuzz '^FuzzHubFrames$$' $(FUZZFLAGS) ./sseclient
	$(GO) test -run '^$$' -fuzz '^FuzzRequestToken$$' $(FUZZFLAGS) ./cmd/ssehub
	$(GO) test -run '^$$' -fuzz '^FuzzPublishBody$$' $(FUZZFLAGS) ./cmd/ssehub
