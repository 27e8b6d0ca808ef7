#!/usr/bin/env bash
# `make demo`: the appliance's main job end to end on this machine, with a
# software TPM. Everything lives under ./demo/; `make demo-stop` stops what
# this started. Safe to run again: it stops and wipes the previous demo.
set -euo pipefail
cd "$(dirname "$0")/.."

ZV="${ZONEVAULT_BIN:-target/debug/zonevault}"
DEMO="$PWD/demo"
export TSS2_LOG=all+none
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port_pair() {
  local p
  for _ in $(seq 200); do
    p=$(( (RANDOM % 20000) + 30000 ))
    if port_free "$p" && port_free $((p + 1)); then echo "$p"; return 0; fi
  done
  echo "no free loopback port pair found" >&2; return 1
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2; return 1
}

scripts/demo-stop.sh >/dev/null
rm -rf "$DEMO"
mkdir -p "$DEMO/tpm-state" "$DEMO/pki" "$DEMO/recovery"

# Starts swtpm on a free port pair; another process may take the pair
# between the check and the bind, so a swtpm that dies is retried.
start_swtpm() {
  local pid
  for _ in 1 2 3 4 5; do
    TPM_PORT=$(free_port_pair)
    setsid swtpm socket --tpm2 \
      --server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" \
      --ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" \
      --tpmstate "dir=$DEMO/tpm-state" --flags not-need-init,startup-clear \
      >"$DEMO/swtpm.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DEMO/swtpm.pid"
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      (exec 3<>"/dev/tcp/127.0.0.1/$TPM_PORT") 2>/dev/null && return 0
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
  done
  echo "swtpm did not start; see $DEMO/swtpm.log" >&2
  return 1
}

# Manufactures the TPM as a vendor would: an EK with an EK certificate
# (and a platform certificate) issued by swtpm's local CA, whose
# certificates under demo/tpm-ca/ca stand in for the manufacturer CA bundle.
manufacture_tpm() {
  local ca="$DEMO/tpm-ca"
  mkdir -p "$ca"
  printf 'statedir = %s/ca\nsigningkey = %s/ca/signkey.pem\nissuercert = %s/ca/issuercert.pem\ncertserial = %s/ca/certserial\n' \
    "$ca" "$ca" "$ca" "$ca" >"$ca/swtpm-localca.conf"
  printf -- '--platform-manufacturer zonevault-demo\n--platform-version 1\n--platform-model swtpm\n' >"$ca/swtpm-localca.options"
  printf 'create_certs_tool = swtpm_localca\ncreate_certs_tool_config = %s\ncreate_certs_tool_options = %s\nactive_pcr_banks = sha256\n' \
    "$ca/swtpm-localca.conf" "$ca/swtpm-localca.options" >"$ca/swtpm_setup.conf"
  XDG_CONFIG_HOME="$ca" swtpm_setup --tpm2 --create-ek-cert --create-platform-cert --overwrite \
    --tpmstate "$DEMO/tpm-state" --config "$ca/swtpm_setup.conf" </dev/null >"$DEMO/swtpm-setup.log" 2>&1 \
    || { cat "$DEMO/swtpm-setup.log" >&2; return 1; }
  cat "$ca/ca/issuercert.pem" "$ca/ca/swtpm-localca-rootca-cert.pem" >"$DEMO/ek-ca-bundle.pem"
}

step "1. Manufacture a software TPM with an EK certificate, start it (swtpm) on a free loopback port"
manufacture_tpm
echo "EK certificate issued by swtpm's local CA; manufacturer CA bundle demo/ek-ca-bundle.pem"
start_swtpm
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
echo "swtpm pid $(cat "$DEMO/swtpm.pid"), TCTI $TCTI"

step "2. Demo PKI: a CA, the server certificate, one certificate per role"
"$ZV" pki init-ca --out "$DEMO/pki/ca" --trust-domain demo.zonevault
"$ZV" pki issue-server --ca "$DEMO/pki/ca" --dns localhost --ip 127.0.0.1 --out "$DEMO/pki/server"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role operator --org zone-operator --person alice --out "$DEMO/pki/operator"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role regulator --org bjeit --person bob --out "$DEMO/pki/regulator"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role provider --org demo-bureau --person dave --out "$DEMO/pki/provider"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role analyst --org partner-a --person carol --out "$DEMO/pki/analyst"
ls "$DEMO/pki"

step "3. zonevault init: seal a fresh master key to PCRs 0,2,4,7; 3 recovery shares, any 2 recover"
printf 'custodian-one-passphrase\ncustodian-two-passphrase\ncustodian-three-passphrase\n' >"$DEMO/passphrases.txt"
chmod 600 "$DEMO/passphrases.txt"
"$ZV" init --data-dir "$DEMO/data" --tpm "$TCTI" --pcrs 0,2,4,7 \
  --recovery-shares 3 --recovery-threshold 2 --recovery-out "$DEMO/recovery" \
  --recovery-passphrases "$DEMO/passphrases.txt"

step "4. zonevault status"
"$ZV" status --data-dir "$DEMO/data" --tpm "$TCTI"

step "5. Start the mTLS server"
API_PORT=$(free_port_pair)
cat >"$DEMO/config.toml" <<TOML
data_dir = "data"
tpm = "$TCTI"
listen = "127.0.0.1:$API_PORT"
trust_domain = "demo.zonevault"

[tls]
cert = "pki/server/cert.pem"
key = "pki/server/key.pem"
client_ca = "pki/ca/cert.pem"
TOML
setsid "$ZV" serve --config "$DEMO/config.toml" >"$DEMO/server.log" 2>&1 &
echo $! >"$DEMO/server.pid"
wait_port "$API_PORT"
echo "server pid $(cat "$DEMO/server.pid") on https://127.0.0.1:$API_PORT"

export ZONEVAULT_ADDR="https://127.0.0.1:$API_PORT" ZONEVAULT_CACERT="$DEMO/pki/ca/cert.pem"
as() { # as ROLE curl-args...
  local role=$1; shift
  curl -sS --fail-with-body --cacert "$ZONEVAULT_CACERT" \
    --cert "$DEMO/pki/$role/cert.pem" --key "$DEMO/pki/$role/key.pem" "$@"
}

step "6. Health over mutual TLS (operator certificate)"
as operator "$ZONEVAULT_ADDR/v1/health"; echo

step "7. A connection without a client certificate is refused at the handshake"
if curl -sS --cacert "$ZONEVAULT_CACERT" "$ZONEVAULT_ADDR/v1/health" 2>"$DEMO/nocert.err"; then
  echo "UNEXPECTED: served without a client certificate" >&2; exit 1
fi
echo "refused: $(head -c 200 "$DEMO/nocert.err")"

# as_role ROLE zonevault-args...: a client command with ROLE's certificate.
as_role() {
  local role=$1; shift
  ZONEVAULT_CLIENT_CERT="$DEMO/pki/$role/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/$role/key.pem" "$ZV" "$@"
}
FIELDS=id,name,resident_id,mobile,bank_card,address,amount,registered
FROM=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)
UNTIL=$(date -u -d '+365 days' +%Y-%m-%dT%H:%M:%SZ)

step "8. Government data sharing: the operator applies, the zone's regulator assesses, the providing department approves"
export ZONEVAULT_CLIENT_CERT="$DEMO/pki/operator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/operator/key.pem"
"$ZV" zone create --id finance --name "金融数据专区" --kind sectoral --domain finance
SA=$("$ZV" share-application file --zone finance --scenario "small-business credit (demo)" \
  --provider demo-bureau --item "residents:$FIELDS" --purpose "credit risk model" \
  --from "$FROM" --to "$UNTIL")
echo "share application $SA"
as_role regulator share-application assess --id "$SA" --approve --reason "scenario and fields are necessary"
as_role provider share-application decide --id "$SA" --approve --reason "fields approved for sharing"
"$ZV" share-application list

step "9. Import under the approved application: the dataset, 2000 synthetic rows streamed in, the schema confirmed"
"$ZV" dataset create --zone finance --id residents --title "居民样例数据" \
  --provider demo-bureau --source government-share --application "$SA" --retention 365d
"$ZV" sample --rows 2000 --seed 1 --format csv --out "$DEMO/sample.csv"
"$ZV" dataset import --zone finance --id residents --file "$DEMO/sample.csv"
"$ZV" dataset confirm --id residents --column amount::general-3
"$ZV" zone list

step "10. Data-use filing: partner-a's permissions, the operator files scenario, scope and method, the regulator acknowledges"
"$ZV" partner set --org partner-a --tier 2 --data-access --scenario-authorization
FILING=$("$ZV" filing create --scenario "credit risk model (demo)" \
  --scope "residents:id,name,resident_id,mobile,bank_card,address,amount" --method extract \
  --recipients partner-a --from "$FROM" --to "$UNTIL")
echo "filing $FILING"
as_role regulator filing acknowledge --id "$FILING" --approve --reason "scope and method are minimal"

step "11. Grants and extracts: a grant to analyst carol under the filing, a desensitized extract with its signed manifest"
GRANT=$("$ZV" grant create --recipient spiffe://demo.zonevault/analyst/partner-a/carol \
  --dataset residents --columns id,name,resident_id,mobile,bank_card,address,amount \
  --purpose "credit risk model (demo)" --row-limit 5000 --max-extracts 3 --filing "$FILING" \
  --expires "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)")
echo "grant $GRANT"
"$ZV" grant list
VERIFIER_KEY=$("$ZV" ledger key)
ZONEVAULT_CLIENT_CERT="$DEMO/pki/analyst/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/analyst/key.pem" \
  "$ZV" extract --grant "$GRANT" --out "$DEMO/extract.csv"
echo "first rows (names and IDs pseudonymized, mobiles and cards masked, addresses to districts, amounts to ranges):"
head -n 6 "$DEMO/extract.csv"
"$ZV" verify extract --manifest "$DEMO/extract.csv.manifest" --body "$DEMO/extract.csv" --key "$VERIFIER_KEY"
echo "usage report of the filing, from the ledger:"
as_role regulator filing usage-report --id "$FILING" --format markdown

step "12. Attestation: the regulator enrolls the appliance's AK, then verifies a TPM quote with the pin"
# Enrollment: the EK certificate must chain to the manufacturer CA bundle,
# and the TPM holding that EK must activate a credential bound to the AK
# (a fresh secret, encrypted by the regulator in pure Rust); then the AK is
# pinned. Reference values: swtpm's firmware PCRs are at their reset values
# (zeros); on a real appliance they come from a known-good machine and
# `zonevault-launch reference`.
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" attest enroll --ek-ca "$DEMO/ek-ca-bundle.pem" --out "$DEMO/ak-pin.json"
Z=$(printf '0%.0s' $(seq 64))
printf '{"bank":"sha256","selection":[0,2,4,7],"pcrs":{"0":"%s","2":"%s","4":"%s","7":"%s"},"sources":{"0":"firmware","2":"firmware","4":"firmware","7":"firmware"}}\n' \
  "$Z" "$Z" "$Z" "$Z" >"$DEMO/reference.json"
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" attest verify --reference "$DEMO/reference.json" --ak-pin "$DEMO/ak-pin.json" \
  --save-bundle "$DEMO/attestation.json"

step "13. Two-person destruction: the operator requests it, the zone's regulator approves, the certificate verifies"
DX=$("$ZV" destruction request --dataset residents --basis "demo: retention policy" --reason "end of the demo")
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" destruction approve --id "$DX"
"$ZV" destruction certificate --id "$DX" --out "$DEMO/destruction-certificate.txt"
"$ZV" verify certificate --certificate "$DEMO/destruction-certificate.txt" --key "$("$ZV" ledger key)"
echo -n "the dataset now answers: HTTP "
curl -sS -o /dev/null -w '%{http_code}\n' --cacert "$ZONEVAULT_CACERT" \
  --cert "$DEMO/pki/operator/cert.pem" --key "$DEMO/pki/operator/key.pem" \
  "$ZONEVAULT_ADDR/v1/datasets/residents"
echo "incident trace of analyst carol, every entry proved included in a signed checkpoint:"
as_role regulator trace-incident --identity spiffe://demo.zonevault/analyst/partner-a/carol \
  --key "$("$ZV" ledger key)"

step "14. The regulator verifies the whole audit ledger, with the checkpoint key the TPM quote attested"
LEDGER_KEY=$(grep -o '"checkpoint_key":"[^"]*"' "$DEMO/attestation.json" | head -1 | cut -d'"' -f4)
echo "pinned key: $LEDGER_KEY"
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" ledger verify --key "$LEDGER_KEY" --save "$DEMO/ledger-head.note"

step "Done"
cat <<TXT
What ran, all under $DEMO:
  swtpm         pid $(cat "$DEMO/swtpm.pid"), state in demo/tpm-state, TCTI $TCTI
  zonevault     pid $(cat "$DEMO/server.pid"), https://127.0.0.1:$API_PORT, log demo/server.log
  data dir      demo/data (sealed key, encrypted catalog, ledger)
  recovery      demo/recovery (3 shares, threshold 2; passphrases in demo/passphrases.txt, demo only)
Stop it with:   make demo-stop
TXT
