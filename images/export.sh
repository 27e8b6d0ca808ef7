#!/usr/bin/env bash
# Copies the export area of a stopped appliance's data disk (/export: the
# firmware event log, first-boot recovery shares) to OUT, without mounting:
# the disk is converted to a temporary raw copy, its journal replayed on the
# copy, and the files read with debugfs. The disk itself is not modified.
#
# usage: images/export.sh DISK OUT
set -euo pipefail

die() { echo "images/export.sh: error: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: images/export.sh DISK OUT"
disk="$1" out="$2"
[ -f "$disk" ] || die "$disk not found"

tmp="$(mktemp -d /tmp/zonevault-export.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
qemu-img convert -q -O raw "$disk" "$tmp/disk.raw" || die "cannot read $disk (is the VM still running?)"
status=0
e2fsck -fy "$tmp/disk.raw" >"$tmp/fsck.log" 2>&1 || status=$?
[ "$status" -lt 4 ] || die "the data disk's file system is damaged: $(cat "$tmp/fsck.log")"
mkdir -p "$tmp/rdump"
debugfs -R "rdump /export $tmp/rdump" "$tmp/disk.raw" >/dev/null 2>"$tmp/debugfs.log"
[ -d "$tmp/rdump/export" ] || die "no /export on $disk: $(cat "$tmp/debugfs.log")"
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$tmp/rdump/export" "$out"
