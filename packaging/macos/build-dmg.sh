#!/usr/bin/env bash
# Wraps build/Berth.app into build/Berth.dmg (drag to Applications).
#   bash packaging/macos/build-dmg.sh [OUT]        (make dmg; make app first)
set -euo pipefail
out=${1:-build}
cd "$(dirname "$0")/../.."
if [[ $(uname -s) != Darwin ]]; then
  echo "build-dmg.sh: needs macOS (hdiutil)" >&2
  exit 1
fi
[[ -d $out/Berth.app ]] || { echo "build-dmg.sh: $out/Berth.app missing: run 'make app' first" >&2; exit 1; }
stage=$(mktemp -d "${TMPDIR:-/tmp}/berth-dmg.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp -R "$out/Berth.app" "$stage/"
ln -s /Applications "$stage/Applications"
rm -f "$out/Berth.dmg"
hdiutil create -volname Berth -srcfolder "$stage" -fs HFS+ -format UDZO -ov "$out/Berth.dmg"
if [[ ${BERTH_SIGN_IDENTITY:--} != - ]]; then
  codesign --force --sign "$BERTH_SIGN_IDENTITY" --timestamp "$out/Berth.dmg"
fi
hdiutil verify "$out/Berth.dmg"
echo "$out/Berth.dmg"
