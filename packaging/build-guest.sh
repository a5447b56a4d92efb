#!/usr/bin/env bash
# Builds the guest agent and its initramfs for the host arch and for arm64
# (what Berth.app ships) into OUT/guest/<arch>/.
set -euo pipefail
out=${1:-build}
for arch in $(go env GOARCH) arm64; do
  mkdir -p "$out/guest/$arch"
  go run ./guest/cmd/mkinitramfs -arch "$arch" -o "$out/guest/$arch/initramfs.cpio.gz"
done
