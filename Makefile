# Floodgate: thin wrappers over `go` commands. Run `make help` for the list.

SHELL   := /bin/bash
GO      ?= go
TAGS    := -tags floodgate.solution
MODULES := ch01-intro ch02-concurrency ch03-networking ch04-tuning ch05-edge capstone tools
# `go test ./...` at a go.work root sees no packages; every module path starts
# with floodgate/, so this pattern covers the whole workspace.
PKGS    := floodgate/...

.PHONY: help test fmt vet verify race lab capstone tidy tune generate compat bench c1m

help:
	@echo "make test      everything CI checks: gofmt, vet (both builds), wb verify, -race tests"
	@echo "make lab       the workbook: where you are and what to do next (go tool wb)"
	@echo "make capstone  run the Floodgate broker (MINE=1 builds it from your own labs)"
	@echo "make tune      which limits of this machine cap the connection count, and how to raise them"
	@echo "make bench     Floodgate vs mosquitto vs mochi-mqtt, side by side (QUICK=1: a 30-second smoke run)"
	@echo "make c1m       one Floodgate process holds 1,000,000 subscribed MQTT clients, as root (C1M_FLAGS=\"-conns 15000\": a small try)"
	@echo "make tidy      check that every module's go.mod is tidy on its own"
	@echo "make compat    vet both builds with Go $(OLDEST_GO), the oldest Go the README promises"
	@echo "make generate  regenerate ch05-edge/03-grpc's gRPC code (needs protoc)"

test: fmt vet verify race

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt: these files need formatting:"; echo "$$out"; exit 1; fi
	@echo "gofmt: ok"

vet:
	$(GO) vet $(PKGS)
	$(GO) vet $(TAGS) $(PKGS)

verify:
	$(GO) tool wb verify

race:
	$(GO) test -race $(TAGS) $(PKGS)

lab:
	@$(GO) tool wb

capstone:
	$(GO) run $(if $(MINE),,-tags floodgate.solution) ./capstone/cmd/floodgate

tune:
	@$(GO) run floodgate/tools/cmd/tune

# The load generator speaks MQTT through ch03's codec, which is the
# reference only with the solution tag. Results go to $TMPDIR/floodgate-bench-*;
# BENCH_FLAGS passes more flags (go run ... bench -h lists them).
bench:
	$(GO) run $(TAGS) floodgate/tools/cmd/bench $(if $(QUICK),-quick) $(BENCH_FLAGS)

# One broker process, 1,000,000 connected and subscribed clients (load
# generator in-process, private fd tables), a 20K msg/s background load,
# bounded by 10 minutes; it checks the limits first, raises the sysctls it
# needs as root and restores them. Results go to $TMPDIR/floodgate-c1m-*;
# C1M_FLAGS passes more flags (go run ... c1m -h lists them).
c1m:
	$(GO) run $(TAGS) floodgate/tools/cmd/c1m $(C1M_FLAGS)

# The README promises Go 1.25 or newer: vet both builds with that toolchain
# (the go command fetches it from the module proxy on first use).
OLDEST_GO := go1.25.5
compat:
	GOTOOLCHAIN=$(OLDEST_GO) $(GO) vet $(PKGS)
	GOTOOLCHAIN=$(OLDEST_GO) $(GO) vet $(TAGS) $(PKGS)

tidy:
	@set -e; for m in $(MODULES); do (cd $$m && GOWORK=off $(GO) mod tidy -diff) || { echo "go.mod of $$m is not tidy"; exit 1; }; done; echo "tidy: ok"

# Regenerate ch05-edge/03-grpc's gRPC code from its .proto with Debian's
# protoc (protobuf-compiler), protoc-gen-go and protoc-gen-go-grpc.
generate:
	@for t in protoc protoc-gen-go protoc-gen-go-grpc; do command -v $$t >/dev/null || { echo "generate: $$t not found: apt-get install protobuf-compiler protoc-gen-go protoc-gen-go-grpc"; exit 1; }; done
	cd ch05-edge/03-grpc/devicepb && protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative device.proto
