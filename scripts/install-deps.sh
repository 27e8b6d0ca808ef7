#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages zonevault needs to build, test and run
# its demo. Installs only what is missing; uses sudo when not root.
set -euo pipefail

packages=(
  build-essential pkg-config perl make curl ca-certificates
  libtss2-dev libtss2-tcti-swtpm0 libtss2-tcti-device0
  swtpm swtpm-tools tpm2-tools
  sqlite3
  qemu-system-x86 qemu-utils ovmf cpio kmod e2fsprogs
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing system packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo (Rust 1.85 or newer) is not on PATH; install a Rust toolchain first" >&2
  exit 1
fi
