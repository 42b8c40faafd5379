# Palisade's two entry points: `make demo` runs the main job on the embedded
# example (no cluster needed); `make test` runs the whole test suite.

GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
EXAMPLE := examples/reference-system

.PHONY: demo test build bench bench-proxy fuzz

# Static (no cgo): the pure-Go DNS resolver, and no libc to load or map
# into every proxy.
build:
	CGO_ENABLED=0 $(GO) build -o bin/palisade ./cmd/palisade

# The mesh on this machine with live traffic, then the offline analysis of
# the reference system as published.
demo: build
	bin/palisade demo
	./scripts/demo.sh bin/palisade $(EXAMPLE)

test:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The data plane under load, against a direct baseline and HAProxy doing
# the same mTLS hop pair (installs HAProxy with apt-get when root).
bench-proxy: build
	./bench/run.sh

# Runs every fuzz target for FUZZTIME each (default 30s).
FUZZTIME ?= 30s
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)
