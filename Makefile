# multihome: `make demo` runs the demo lab, `make test` runs every test.
# Both install the Debian packages they need (scripts/deps.sh) and need root.
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps demo test test-short vet bench clean package

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

# Debian packages for amd64 and arm64 (static binaries, CGO_ENABLED=0) in
# bin/, built with nfpm (package deb), then checked by reading them back.
PKG_ARCHES ?= amd64 arm64
package:
	mkdir -p bin/pkg
	$(GO) build -o bin/pkg/multihome-host ./cmd/multihome
	./bin/pkg/multihome-host completion bash > bin/pkg/multihome.bash
	./bin/pkg/multihome-host completion zsh > bin/pkg/_multihome
	rm -f bin/multihome_*.deb
	for a in $(PKG_ARCHES); do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" \
	    -o bin/pkg/linux-$$a/multihome ./cmd/multihome || exit 1; \
	  $(GO) run ./cmd/multihome-deb -arch $$a -version $(VERSION) -bin bin/pkg/linux-$$a/multihome \
	    -bash bin/pkg/multihome.bash -zsh bin/pkg/_multihome -o bin || exit 1; \
	done
	MULTIHOME_DEBS="$$(ls $(CURDIR)/bin/multihome_*.deb)" $(GO) test -count=1 -run TestBuiltPackages ./deb

bench: deps build
	./bench/run.sh

clean:
	rm -rf bin
	-./bin/multihome-lab down --all 2>/dev/null
