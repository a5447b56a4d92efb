#!/usr/bin/env bash
# Installs, on Debian 12 as root, every system package Berth's build and tests need.
# Idempotent: when everything is present it returns in well under a second.
set -euo pipefail

pkgs=(
  qemu-system-x86        # the QEMU backend's amd64 VMs
  qemu-system-arm        # the arm64 guest path (what the Mac ships) under TCG
  linux-image-cloud-amd64 # the guest kernel the tests boot
  busybox-static         # test images are built from /bin/busybox; its udhcpd serves the DHCP client test
  iproute2               # network namespaces + veth for the DHCP client test
  e2fsprogs              # e2fsck/debugfs judge every ext4 image
  docker-registry        # a real registry server on loopback
  skopeo                 # tarballs made by a tool nobody here wrote
  docker-compose         # compose v1 (python) drives a two-service project on a user network (app/api networks e2e)
  tmux                   # the judge of the terminal model
  vim less procps htop   # programs whose screens the terminal model is checked against
  xfsprogs               # a reflink-capable filesystem for the O(1) clone test
  kmod                   # depmod for the arm64 kernel modules (fetch-arm64.sh)
  cpio zstd curl ca-certificates
)
# The docker CLI is preinstalled on the dev machines; elsewhere Debian's docker.io brings one.
command -v docker >/dev/null 2>&1 || pkgs+=(docker.io)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-linux: missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The distribution registry package starts a system service on install; tests start their own
# instances on free loopback ports, so the packaged one is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi

# The arm64 guest path (what Berth.app ships to Apple silicon) is tested here under
# qemu-system-aarch64 with Debian's arm64 cloud kernel and busybox, fetched without
# changing dpkg's architectures.
bash "$(dirname "$0")/fetch-arm64.sh"
