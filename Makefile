# multihome: `make demo` runs the demo lab, `make test` runs every test.
# Both install the Debian packages they need (scripts/deps.sh) and need root.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps demo test test-short vet bench clean

all: build

# bin/multihome is the daemon and CLI for gateways; bin/multihome-lab the
# lab and the demo (it runs bin/multihome), kept out of the daemon's binary.
build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/multihome ./cmd/multihome
	$(GO) build -o bin/multihome-lab ./cmd/multihome-lab

deps:
	./scripts/deps.sh

demo: deps build
	./bin/multihome-lab demo

# The full suite: unit tiers plus real-kernel tests in throwaway network
# namespaces (root). Packages run one at a time: they share the kernel.
test: deps
	$(GO) vet ./...
	test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) test -p 1 -count=1 -timeout 45m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench: deps build
	./bench/run.sh

clean:
	rm -rf bin
	-./bin/multihome-lab down --all 2>/dev/null
