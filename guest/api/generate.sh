#!/usr/bin/env bash
# Regenerates the agent protocol's Go code from guest/api/agent.proto.
# Needs protoc (Debian package protobuf-compiler); installs the Go plugins at
# the versions go.mod pins (protoc-gen-go = google.golang.org/protobuf's
# version) into a private GOBIN so the output is reproducible.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v protoc >/dev/null || { echo "generate.sh: protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }
PROTOBUF_VERSION=$(go list -m -f '{{.Version}}' google.golang.org/protobuf)
GRPC_GEN_VERSION=v1.6.2 # protoc-gen-go-grpc (its own module; needs grpc >= 1.64)
bin=$(go env GOCACHE)/berth-protoc-bin
mkdir -p "$bin"
GOBIN=$bin go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOBUF_VERSION"
GOBIN=$bin go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$GRPC_GEN_VERSION"
PATH=$bin:$PATH protoc -I guest/api \
  --go_out=guest/api --go_opt=paths=source_relative \
  --go-grpc_out=guest/api --go-grpc_opt=paths=source_relative \
  guest/api/agent.proto
