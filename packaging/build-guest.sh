#!/usr/bin/env bash
# Builds the guest agent and its initramfs for the host arch and for arm64
# (what Berth.app ships) into OUT/guest/<arch>/.
set -euo pipefail
out=${1:-build}
# The version the agent reports in Health (Makefile passes its VERSION).
export BERTH_VERSION=${BERTH_VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
for arch in $(printf "%s\n" "$(go env GOARCH)" arm64 | sort -u); do
  mkdir -p "$out/guest/$arch"
  go run ./guest/cmd/mkinitramfs -arch "$arch" -o "$out/guest/$arch/initramfs.cpio.gz"
done
