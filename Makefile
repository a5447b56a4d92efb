# Berth: two commands matter — `make run` and `make test`. See README.md.
SHELL := /bin/bash
GO ?= go
export PATH := $(PATH):/usr/local/go/bin:$(HOME)/go/bin
UNAME_S := $(shell uname -s)
HOSTARCH := $(shell $(GO) env GOARCH)
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/berth-dev/berth/app/cli.Version=$(VERSION)
OUT := build

.PHONY: run test bench build berth setup vet darwincheck app dmg proto clean

## run: set up, build and run the main job (macOS: Berth.app; Linux: headless engine + demo container)
run:
ifeq ($(UNAME_S),Darwin)
	$(MAKE) app
	open $(OUT)/Berth.app
else
	bash packaging/setup-linux.sh
	$(MAKE) build
	bash packaging/demo.sh
endif

## test: everything CI runs (installs what the tests need first)
test: setup vet
	$(GO) test -timeout 45m ./...
	$(MAKE) darwincheck

setup:
ifneq ($(UNAME_S),Darwin)
	bash packaging/setup-linux.sh
endif

vet:
	$(GO) vet ./...

## darwincheck: type-check the darwin-only code (vz, darwinkit) for both Mac architectures
darwincheck:
	$(GO) run ./packaging/darwincheck -arch arm64,amd64 ./...

## bench: the project's benchmarks, each compared against its reference in the same run
bench: setup build
	BERTH_BENCH=1 $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./... | tee $(OUT)/bench.txt

## build: the berth binary and the guest initramfs for the host arch and arm64
build: berth
	BERTH_VERSION=$(VERSION) bash packaging/build-guest.sh $(OUT)

berth:
	@mkdir -p $(OUT)
	CGO_ENABLED=$(if $(filter Darwin,$(UNAME_S)),1,0) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(OUT)/berth ./app

## app / dmg: Berth.app (macOS only: cgo, codesign)
app:
	bash packaging/macos/build-app.sh $(OUT)

dmg: app
	bash packaging/macos/build-dmg.sh $(OUT)

## proto: regenerate the guest agent's gRPC code from guest/api/*.proto
proto:
	bash guest/api/generate.sh

clean:
	rm -rf $(OUT)
