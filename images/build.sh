#!/usr/bin/env bash
# Builds the zonevault appliance image (see images/README.md):
#   OUT/vmlinuz          Debian's linux-image-amd64 kernel
#   OUT/initrd.cpio      zonevault-launch as /init, zonevault, its libraries,
#                        config, TLS material and the kernel modules it needs
#   OUT/pki/             the CA, server and client certificates (kept across builds)
#   OUT/firmware-pcrs.json  PCRs 0,2,4,7,9 replayed from a reference boot's event log
#   OUT/reference.json   what a verifier should expect (firmware + launcher PCR 11)
#
# usage: images/build.sh [--bin-dir DIR] [--out DIR] [--revision TEXT]
#   --bin-dir   where zonevault and zonevault-launch are (default target/release)
#   --out       output directory (default images/out)
#   --revision  the image revision, written into the configuration (default 1)
set -euo pipefail
# (No pipeline here may end early, e.g. `| head` or awk's `exit`: with
# pipefail, the writer's SIGPIPE would fail the build without a message.)

here="$(cd "$(dirname "$0")" && pwd)"
root_dir="$(dirname "$here")"
bin_dir="$root_dir/target/release"
out="$here/out"
revision=1
cache="${ZONEVAULT_IMAGE_CACHE:-$here/cache}"
trust_domain="appliance.zonevault"
modules_wanted=(virtio_pci virtio_blk virtio_net ext4 crc32c_generic)

die() { echo "images/build.sh: error: $*" >&2; exit 1; }
say() { echo "images/build.sh: $*" >&2; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --bin-dir) bin_dir="$(cd "$2" && pwd)"; shift 2 ;;
      --out) mkdir -p "$2"; out="$(cd "$2" && pwd)"; shift 2 ;;
      --revision) revision="$2"; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  for b in zonevault zonevault-launch; do
    [ -x "$bin_dir/$b" ] || die "$bin_dir/$b not found (cargo build --bins first)"
  done
  for tool in apt-get dpkg-deb modinfo cpio strip ldd mkfs.ext4 qemu-img tpm2_eventlog; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
  done
}

# The versioned package linux-image-amd64 depends on (linux-image-6.1.0-N-amd64).
kernel_package() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ && !n++ {print $2}'
}

# Debian's kernel package, unpacked once into the cache (no initramfs hooks run).
fetch_kernel() {
  local pkg
  pkg="$(kernel_package)"
  if [ -z "$pkg" ]; then
    say "apt does not know linux-image-amd64 yet: apt-get update"
    $(if [ "$(id -u)" -ne 0 ]; then echo sudo; fi) apt-get update -qq || die "apt-get update failed"
    pkg="$(kernel_package)"
  fi
  [ -n "$pkg" ] || die "apt does not know linux-image-amd64"
  kernel_dir="$cache/$pkg"
  if [ ! -d "$kernel_dir" ]; then
    say "fetching $pkg"
    local tmp
    tmp="$(mktemp -d "$cache.XXXXXX")"
    (cd "$tmp" && apt-get download -q "$pkg" 2>/dev/null) || die "apt-get download $pkg failed"
    dpkg-deb -x "$tmp"/*.deb "$tmp/x"
    mkdir -p "$cache"
    mv "$tmp/x" "$kernel_dir.part.$$" && mv "$kernel_dir.part.$$" "$kernel_dir"
    rm -rf "$tmp"
  fi
  kver="$(basename "$(ls -d "$kernel_dir"/lib/modules/*)")"
}

# The module file of NAME, and its dependencies first (modinfo's depends=).
module_closure() {
  local name="$1" file dep
  file="$(find "$kernel_dir/lib/modules/$kver/kernel" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) -print -quit)"
  [ -n "$file" ] || die "kernel module $name not found in $kver"
  for dep in $(modinfo -F depends "$file" | tr ',' ' '); do
    module_closure "$dep"
  done
  echo "${file#"$kernel_dir"}"
}

stage_modules() {
  local list=() m
  for m in "${modules_wanted[@]}"; do
    while read -r m; do list+=("$m"); done < <(module_closure "$m")
  done
  : >"$stage/lib/modules/zonevault.load"
  for m in "${list[@]}"; do
    grep -qxF "$m" "$stage/lib/modules/zonevault.load" && continue
    install -D -m 0644 "$kernel_dir$m" "$stage$m"
    echo "$m" >>"$stage/lib/modules/zonevault.load"
  done
}

# Every shared library of the binaries, plus the TPM device TCTI that
# libtss2-tctildr opens with dlopen (ldd cannot see it).
stage_libraries() {
  local tcti lib
  tcti="$(ldconfig -p | awk '/libtss2-tcti-device.so.0 / && !n++ {print $NF}')"
  [ -n "$tcti" ] || die "libtss2-tcti-device0 is not installed"
  for lib in $( { ldd "$bin_dir/zonevault"; ldd "$bin_dir/zonevault-launch"; ldd "$tcti"; echo "x => $tcti (0)"; } \
      | awk '/=> \// {print $3} /^[ \t]*\/lib64\// {print $1}' | sort -u); do
    install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
  done
}

config_text() {
  cat <<EOF
# zonevault appliance, image revision $revision
data_dir = "/data/vault"
tpm = "device:/dev/tpmrm0"
listen = "0.0.0.0:8443"
trust_domain = "$trust_domain"

[tls]
cert = "tls/cert.pem"
key = "tls/key.pem"
client_ca = "tls/client-ca.pem"
EOF
}

# A demo PKI, made once per output directory: the server certificate is for
# 127.0.0.1 (the host's forwarded port); clients for three roles.
make_pki() {
  local zv="$bin_dir/zonevault" pki="$out/pki"
  [ -f "$pki/analyst/cert.pem" ] && return
  say "creating the PKI in $pki"
  rm -rf "$pki"
  "$zv" pki init-ca --out "$pki/ca" --trust-domain "$trust_domain" >/dev/null
  "$zv" pki issue-server --ca "$pki/ca" --dns localhost --ip 127.0.0.1 --out "$pki/server" >/dev/null
  "$zv" pki issue --ca "$pki/ca" --role operator --org zone-op --person alice --out "$pki/operator" >/dev/null
  "$zv" pki issue --ca "$pki/ca" --role regulator --org bjeit --person bob --out "$pki/regulator" >/dev/null
  "$zv" pki issue --ca "$pki/ca" --role analyst --org partner-a --person carol --out "$pki/analyst" >/dev/null
}

stage_root() {
  stage="$out/root"
  rm -rf "$stage"
  mkdir -p "$stage"/{proc,sys,dev,run,data,import,usr/bin,etc/zonevault/tls,lib/modules}
  strip --strip-all -o "$stage/init" "$bin_dir/zonevault-launch"
  strip --strip-all -o "$stage/usr/bin/zonevault" "$bin_dir/zonevault"
  config_text >"$stage/etc/zonevault/config.toml"
  install -m 0644 "$out/pki/server/cert.pem" "$stage/etc/zonevault/tls/cert.pem"
  install -m 0600 "$out/pki/server/key.pem" "$stage/etc/zonevault/tls/key.pem"
  install -m 0644 "$out/pki/ca/cert.pem" "$stage/etc/zonevault/tls/client-ca.pem"
  stage_libraries
  stage_modules
  cp "$kernel_dir/boot/vmlinuz-$kver" "$out/vmlinuz"
}

# A reproducible newc archive: sorted names, owner root, mtime 0.
pack_initrd() {
  find "$stage" -exec touch -h -d @0 {} +
  (cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z \
    | cpio --quiet --null -o -H newc --reproducible -R 0:0) >"$out/initrd.cpio"
  say "initrd: $(du -h "$out/initrd.cpio" | cut -f1), $(find "$stage" -type f | wc -l) files"
}

# Boots the image once with a fresh TPM and a throwaway data disk in
# reference mode: the appliance exports the firmware event log and powers off.
reference_boot() {
  local tmp="$out/reference-boot"
  rm -rf "$tmp" && mkdir -p "$tmp/import"
  touch "$tmp/import/reference-boot"
  say "reference boot"
  timeout 600 "$here/run.sh" --image "$out" --data "$tmp/data.qcow2" --tpm-state "$tmp/tpm" \
    --import "$tmp/import" --console "$tmp/console.log" --port 0 \
    || die "the reference boot failed; console: $tmp/console.log"
  "$here/export.sh" "$tmp/data.qcow2" "$tmp/export"
  [ -s "$tmp/export/firmware-events.bin" ] || die "no firmware event log; console: $tmp/console.log"
  cp "$tmp/export/firmware-events.bin" "$out/firmware-events.bin"
  cp "$tmp/console.log" "$out/reference-boot.log"
  rm -rf "$tmp"
}

# PCRs 0, 2, 4, 7 and 9 (sha256) from tpm2_eventlog's replay of the log.
firmware_pcrs() {
  tpm2_eventlog "$out/firmware-events.bin" | awk '
    /^pcrs:/ {in_pcrs = 1; next}
    in_pcrs && /sha256:/ {in_bank = 1; next}
    in_bank && /^ +[0-9]+ *: *0x/ {
      sub(/:/, " "); idx = $1; val = tolower(substr($2, 3))
      if (idx == 0 || idx == 2 || idx == 4 || idx == 7 || idx == 9) out[idx] = val
    }
    in_bank && /^ +[a-z]/ && !/sha256/ {in_bank = 0}
    END {
      n = 0; printf "{"
      for (i = 0; i <= 9; i++) if (i in out) { printf "%s\"%d\":\"%s\"", (n++ ? "," : ""), i, out[i] }
      print "}"
      if (n != 5) exit 1
    }' >"$out/firmware-pcrs.json" || die "cannot replay $out/firmware-events.bin"
}

main() {
  parse_args "$@"
  fetch_kernel
  make_pki
  stage_root
  pack_initrd
  reference_boot
  firmware_pcrs
  "$bin_dir/zonevault-launch" reference --binary "$stage/usr/bin/zonevault" \
    --config "$stage/etc/zonevault/config.toml" --base-pcrs "$out/firmware-pcrs.json" \
    >"$out/reference.json"
  say "image in $out (kernel $kver, revision $revision); reference: $out/reference.json"
}

main "$@"
