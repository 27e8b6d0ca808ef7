#!/usr/bin/env bash
# Boots the zonevault appliance image under QEMU: OVMF (UEFI, measured boot),
# a swtpm as the VM's TPM, the qcow2 data disk, a read-only import disk, and
# user-mode networking that forwards only 127.0.0.1:PORT to the appliance's
# TLS port. Returns when the appliance powers off (or QEMU is killed).
#
# usage: images/run.sh --data DISK --tpm-state DIR --port PORT
#                      [--image DIR] [--import DIR] [--console FILE] [--memory MB]
#   --image      the output of images/build.sh (default images/out)
#   --data       the data disk (qcow2); created (ext4, 256 MiB) if missing
#   --tpm-state  the swtpm state; manufactured if empty, with an EK certificate
#                from a local CA whose chain is DIR/ek-ca-bundle.pem (for
#                `zonevault attest enroll --ek-ca`)
#   --port       host port forwarded to the appliance's 8443; 0: none
#   --import     files the appliance reads at boot: passphrases (first boot),
#                recover/*.json and recover/passphrases (recovery)
#   --console    write the serial console here (default: this terminal)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
image="$here/out"
data="" tpm_state="" port="" import_dir="" console="" memory=512
ovmf_code=/usr/share/OVMF/OVMF_CODE_4M.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS_4M.fd
guest_port=8443

die() { echo "images/run.sh: error: $*" >&2; exit 1; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --image) image="$2"; shift 2 ;;
      --data) data="$2"; shift 2 ;;
      --tpm-state) tpm_state="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      --import) import_dir="$2"; shift 2 ;;
      --console) console="$2"; shift 2 ;;
      --memory) memory="$2"; shift 2 ;;
      *) die "unknown argument $1" ;;
    esac
  done
  [ -n "$data" ] && [ -n "$tpm_state" ] && [ -n "$port" ] || die "--data, --tpm-state and --port are required"
  [ -f "$image/vmlinuz" ] && [ -f "$image/initrd.cpio" ] || die "no image in $image (make image)"
  [ -f "$ovmf_code" ] || die "$ovmf_code not found (Debian package ovmf)"
  for tool in qemu-system-x86_64 qemu-img swtpm swtpm_setup mkfs.ext4; do
    command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
  done
}

# A TPM made like a real one: EK and platform certificates from a CA.
manufacture_tpm() {
  mkdir -p "$tpm_state"
  [ -f "$tpm_state/tpm2-00.permall" ] && return
  local ca="$tpm_state/localca"
  mkdir -p "$ca/ca"
  printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' \
    "$ca/ca" "$ca/ca" "$ca/ca" "$ca/ca" >"$ca/swtpm-localca.conf"
  printf -- '--platform-manufacturer zonevault\n--platform-version 1\n--platform-model qemu\n' \
    >"$ca/swtpm-localca.options"
  printf 'create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n' \
    "$ca/swtpm-localca.conf" "$ca/swtpm-localca.options" >"$ca/swtpm_setup.conf"
  XDG_CONFIG_HOME="$ca" swtpm_setup --tpm2 --create-ek-cert --create-platform-cert \
    --tpmstate "$tpm_state" --config "$ca/swtpm_setup.conf" </dev/null >"$ca/setup.log" 2>&1 \
    || die "swtpm_setup failed: $(cat "$ca/setup.log")"
  cat "$ca/ca/issuercert.pem" "$ca/ca/swtpm-localca-rootca-cert.pem" >"$tpm_state/ek-ca-bundle.pem"
}

make_data_disk() {
  [ -f "$data" ] && return
  mkfs.ext4 -q -F -L zonevault-data "$run_dir/data.raw" 256M >/dev/null
  qemu-img convert -q -f raw -O qcow2 "$run_dir/data.raw" "$data"
  rm -f "$run_dir/data.raw"
}

make_import_disk() {
  local src="$run_dir/import-empty"
  mkdir -p "$src"
  [ -n "$import_dir" ] && src="$import_dir"
  mkfs.ext4 -q -F -O ^has_journal -L zonevault-import -d "$src" "$run_dir/import.img" 8M >/dev/null
}

start_swtpm() {
  swtpm socket --tpm2 --tpmstate "dir=$tpm_state" \
    --ctrl "type=unixio,path=$run_dir/swtpm.sock" --terminate \
    --log "file=$run_dir/swtpm.log" &
  swtpm_pid=$!
  local i
  for i in $(seq 100); do
    [ -S "$run_dir/swtpm.sock" ] && return
    kill -0 "$swtpm_pid" 2>/dev/null || die "swtpm exited: $(cat "$run_dir/swtpm.log" 2>/dev/null)"
    sleep 0.1
  done
  die "swtpm did not create its socket"
}

cleanup() {
  if [ -n "${swtpm_pid:-}" ]; then kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; fi
  rm -rf "$run_dir"
}

netdev() {
  local net="user,id=net0,restrict=on"
  [ "$port" != 0 ] && net="$net,hostfwd=tcp:127.0.0.1:$port-10.0.2.15:$guest_port"
  echo "$net"
}

# Can KVM run OVMF here? Some nested hypervisors open /dev/kvm but fail to
# emulate the firmware's flash ("KVM internal error"; the VM hangs). Probe
# once per image directory: usable if OVMF reaches its boot manager.
kvm_usable() {
  [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
  local cache="$image/.kvm-usable" log="$run_dir/kvm-probe.log" pid i
  [ -f "$cache" ] && { [ "$(cat "$cache")" = yes ]; return; }
  qemu-system-x86_64 -nodefaults -no-user-config -display none -machine q35,accel=kvm -m 128 \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" -serial "file:$log" \
    >"$log.err" 2>&1 &
  pid=$!
  for i in $(seq 100); do
    grep -q BdsDxe "$log" 2>/dev/null && break
    grep -q "KVM internal error" "$log.err" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if grep -q BdsDxe "$log" 2>/dev/null; then echo yes >"$cache"; else echo no >"$cache"; fi
  [ "$(cat "$cache")" = yes ]
}

run_qemu() {
  local accel=tcg serial=stdio
  if kvm_usable; then accel=kvm; fi
  [ -n "$console" ] && serial="file:$console"
  cp "$ovmf_vars" "$run_dir/vars.fd"
  qemu-system-x86_64 -nodefaults -no-user-config -no-reboot -display none \
    -machine "q35,accel=$accel" -m "$memory" -smp 1 \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" \
    -drive "if=pflash,format=raw,unit=1,file=$run_dir/vars.fd" \
    -kernel "$image/vmlinuz" -initrd "$image/initrd.cpio" \
    -append "console=ttyS0 panic=-1 quiet" \
    -chardev "socket,id=chrtpm,path=$run_dir/swtpm.sock" \
    -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0 \
    -drive "if=none,id=data,format=qcow2,file=$data" -device virtio-blk-pci,drive=data,serial=zv-data \
    -drive "if=none,id=import,format=raw,readonly=on,file=$run_dir/import.img" \
    -device virtio-blk-pci,drive=import,serial=zv-import \
    -netdev "$(netdev)" -device virtio-net-pci,netdev=net0,romfile= \
    -serial "$serial"
}

main() {
  parse_args "$@"
  run_dir="$(mktemp -d /tmp/zonevault-vm.XXXXXX)"
  trap cleanup EXIT
  trap 'exit 143' TERM INT
  manufacture_tpm
  make_data_disk
  make_import_disk
  start_swtpm
  run_qemu
}

main "$@"
