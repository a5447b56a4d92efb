#!/usr/bin/env bash
# Builds Berth.app (macOS only): the darwin/arm64 berth binary with cgo, the
# linux/arm64 guest agent + initramfs, the bundle (packaging/macos), then an
# ad-hoc signature carrying the virtualization entitlement.
#
#   bash packaging/macos/build-app.sh [OUT]        (make app)
#
# BERTH_SIGN_IDENTITY="Developer ID Application: …" signs for distribution
# instead (hardened runtime + timestamp; notarize the dmg afterwards).
set -euo pipefail
out=${1:-build}
cd "$(dirname "$0")/../.."

if [[ $(uname -s) != Darwin ]]; then
  echo "build-app.sh: Berth.app can only be built on macOS (cgo with the macOS SDK; codesign)." >&2
  echo "On Linux, 'go run ./packaging/darwincheck ./...' type-checks the darwin code instead." >&2
  exit 1
fi
command -v codesign >/dev/null || { echo "build-app.sh: codesign not found: install Xcode or the Command Line Tools (xcode-select --install)" >&2; exit 1; }
xcrun --sdk macosx --show-sdk-path >/dev/null 2>&1 || { echo "build-app.sh: no macOS SDK: install Xcode or the Command Line Tools (xcode-select --install)" >&2; exit 1; }

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
build_no=$(git rev-list --count HEAD 2>/dev/null || echo 1)

echo "==> berth (darwin/arm64, cgo) $version"
mkdir -p "$out/darwin-arm64"
CGO_ENABLED=1 GOOS=darwin GOARCH=arm64 \
  CGO_CFLAGS="-mmacosx-version-min=13.0" \
  CGO_LDFLAGS="-mmacosx-version-min=13.0 -Wl,-no_warn_duplicate_libraries" \
  go build -trimpath -ldflags "-s -w -X github.com/berth-dev/berth/app/cli.Version=$version" \
  -o "$out/darwin-arm64/berth" ./app

echo "==> guest agent + initramfs (linux/arm64)"
bash packaging/build-guest.sh "$out"

echo "==> Berth.app"
go run ./packaging/macos -binary "$out/darwin-arm64/berth" -guest "arm64=$out/guest/arm64" \
  -info Info.plist -entitlements entitlements.plist -version "$version" -build "$build_no" -out "$out/Berth.app"

# Sign after every build: the linker's ad-hoc signature has no entitlements,
# and without com.apple.security.virtualization no VM validates.
identity=${BERTH_SIGN_IDENTITY:--}
echo "==> codesign ($([[ $identity == - ]] && echo ad hoc || echo "$identity"))"
if [[ $identity == - ]]; then
  codesign --force --sign - --entitlements entitlements.plist "$out/Berth.app"
else
  codesign --force --sign "$identity" --options runtime --timestamp --entitlements entitlements.plist "$out/Berth.app"
fi
codesign --verify --strict --verbose=2 "$out/Berth.app"
if ! codesign -d --entitlements - --xml "$out/Berth.app" 2>/dev/null | grep -q com.apple.security.virtualization; then
  echo "build-app.sh: the signed app lacks com.apple.security.virtualization" >&2
  exit 1
fi
plutil -lint "$out/Berth.app/Contents/Info.plist" entitlements.plist
echo "$out/Berth.app"
