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

step "1. Start a software TPM (swtpm) on a free loopback port"
start_swtpm
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
echo "swtpm pid $(cat "$DEMO/swtpm.pid"), TCTI $TCTI"

step "2. Demo PKI: a CA, the server certificate, one certificate per role"
"$ZV" pki init-ca --out "$DEMO/pki/ca" --trust-domain demo.zonevault
"$ZV" pki issue-server --ca "$DEMO/pki/ca" --dns localhost --ip 127.0.0.1 --out "$DEMO/pki/server"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role operator --org zone-operator --person alice --out "$DEMO/pki/operator"
"$ZV" pki issue --ca "$DEMO/pki/ca" --role regulator --org bjeit --person bob --out "$DEMO/pki/regulator"
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

step "8. Zones and datasets: a zone, a dataset, 2000 synthetic rows streamed in, the schema confirmed"
export ZONEVAULT_CLIENT_CERT="$DEMO/pki/operator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/operator/key.pem"
"$ZV" zone create --id finance --name "金融数据专区" --kind sectoral --domain finance
"$ZV" dataset create --zone finance --id residents --title "居民样例数据" \
  --provider demo-bureau --source operator-own --retention 365d
"$ZV" sample --rows 2000 --seed 1 --format csv --out "$DEMO/sample.csv"
"$ZV" dataset import --zone finance --id residents --file "$DEMO/sample.csv"
"$ZV" dataset confirm --id residents --column amount::general-3
"$ZV" zone list

step "9. Grants and extracts: partner-a in tier 2, a grant to analyst carol, a desensitized extract with its signed manifest"
"$ZV" partner set --org partner-a --tier 2 --data-access
GRANT=$("$ZV" grant create --recipient spiffe://demo.zonevault/analyst/partner-a/carol \
  --dataset residents --columns id,name,resident_id,mobile,bank_card,address,amount \
  --purpose "credit risk model (demo)" --row-limit 5000 --max-extracts 3 \
  --expires "$(date -u -d '+30 days' +%Y-%m-%dT%H:%M:%SZ)")
echo "grant $GRANT"
"$ZV" grant list
VERIFIER_KEY=$("$ZV" ledger key)
ZONEVAULT_CLIENT_CERT="$DEMO/pki/analyst/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/analyst/key.pem" \
  "$ZV" extract --grant "$GRANT" --out "$DEMO/extract.csv"
echo "first rows (names and IDs pseudonymized, mobiles and cards masked, addresses to districts, amounts to ranges):"
head -n 6 "$DEMO/extract.csv"
"$ZV" verify extract --manifest "$DEMO/extract.csv.manifest" --body "$DEMO/extract.csv" --key "$VERIFIER_KEY"

step "10. Attestation: the regulator challenges the appliance with a fresh nonce and verifies the TPM quote"
# Reference values: swtpm's firmware PCRs are at their reset values (zeros);
# on a real appliance they come from a known-good machine and
# `zonevault-launch reference`. The AK pin stands in for enrollment.
Z=$(printf '0%.0s' $(seq 64))
printf '{"bank":"sha256","selection":[0,2,4,7],"pcrs":{"0":"%s","2":"%s","4":"%s","7":"%s"},"sources":{"0":"firmware","2":"firmware","4":"firmware","7":"firmware"}}\n' \
  "$Z" "$Z" "$Z" "$Z" >"$DEMO/reference.json"
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" attest verify --reference "$DEMO/reference.json" --ak-pin "$DEMO/data/sealed/ak.pem" \
  --save-bundle "$DEMO/attestation.json"

step "11. Two-person destruction: the operator requests it, the zone's regulator approves, the certificate verifies"
DX=$("$ZV" destruction request --dataset residents --basis "demo: retention policy" --reason "end of the demo")
ZONEVAULT_CLIENT_CERT="$DEMO/pki/regulator/cert.pem" ZONEVAULT_CLIENT_KEY="$DEMO/pki/regulator/key.pem" \
  "$ZV" destruction approve --id "$DX"
"$ZV" destruction certificate --id "$DX" --out "$DEMO/destruction-certificate.txt"
"$ZV" verify certificate --certificate "$DEMO/destruction-certificate.txt" --key "$("$ZV" ledger key)"
echo -n "the dataset now answers: HTTP "
curl -sS -o /dev/null -w '%{http_code}\n' --cacert "$ZONEVAULT_CACERT" \
  --cert "$DEMO/pki/operator/cert.pem" --key "$DEMO/pki/operator/key.pem" \
  "$ZONEVAULT_ADDR/v1/datasets/residents"

step "12. The regulator verifies the whole audit ledger, with the checkpoint key the TPM quote attested"
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
