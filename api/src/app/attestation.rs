//! `GET /v1/attestation?nonce=HEX`: a TPM quote over the configured PCRs
//! whose qualifying data binds the caller's nonce and the current signed
//! ledger checkpoint, with everything a verifier needs to check it offline
//! (the [`attest::Bundle`]).
//!
//! The server keeps one TPM connection for quotes ([`Attestor`]); the quote
//! runs on a blocking thread. The PCRs quoted are those of the sealed
//! policy plus the launcher PCR. Enrollment of the AK (EK certificate and
//! credential activation) is in [`enrollment`].

pub mod enrollment;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use attest::eventlog::{self, Event};
use attest::verify::qualifying_data;
use attest::{AkBlob, Bundle, EkCertificate, Nonce, PcrSelection, Tpm};
use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;
use vault::datadir::DataDir;

use super::extract::ApiQuery;
use super::AppState;
use crate::error::ApiError;

/// What the server needs to answer attestation requests.
pub struct Attestor {
    tpm: Mutex<Tpm>,
    ak: AkBlob,
    selection: PcrSelection,
    ek_certificate: Option<EkCertificate>,
    event_log: PathBuf,
}

impl Attestor {
    /// Keeps `tpm` for quotes with the AK stored in `datadir`, over
    /// `sealed` (the sealed policy's selection) plus the launcher PCR.
    /// `None` (with a warning) if the data directory has no AK, as on
    /// appliances initialized before attestation existed.
    pub fn open(
        mut tpm: Tpm,
        datadir: &DataDir,
        sealed: &PcrSelection,
    ) -> Result<Option<Attestor>> {
        let ak = match AkBlob::read_from(&datadir.sealed_dir()) {
            Ok(ak) => ak,
            Err(err) => {
                tracing::warn!(error = %err, "no attestation key: GET /v1/attestation is disabled");
                return Ok(None);
            }
        };
        let mut indices = sealed.indices().to_vec();
        indices.push(attest::LAUNCHER_PCR);
        let selection = PcrSelection::new(indices).context("the quote's PCR selection")?;
        let ek_certificate = tpm
            .ek_certificate()
            .context("cannot read the EK certificate")?;
        Ok(Some(Attestor {
            tpm: Mutex::new(tpm),
            ak,
            selection,
            ek_certificate,
            event_log: eventlog::path_for(datadir.root()),
        }))
    }

    /// The launch event log; none if the appliance was not started by the
    /// measured launcher.
    fn events(&self) -> Result<Vec<Event>, ApiError> {
        match std::fs::read_to_string(&self.event_log) {
            Ok(text) => eventlog::parse_lines(&text).map_err(ApiError::internal),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ApiError::internal(format!(
                "{}: {e}",
                self.event_log.display()
            ))),
        }
    }

    /// Quotes and assembles the bundle (blocking: talks to the TPM).
    fn bundle(&self, nonce: &Nonce, checkpoint: String, key: String) -> Result<Bundle, ApiError> {
        let event_log = self.events()?;
        let data = qualifying_data(nonce, &checkpoint, &key);
        let quote = {
            let mut tpm = self
                .tpm
                .lock()
                .map_err(|_| ApiError::internal("the TPM lock is poisoned"))?;
            tpm.quote(&self.ak, &self.selection, &data)
                .map_err(|e| ApiError::internal(format!("{:#}", anyhow::Error::new(e))))?
        };
        Ok(Bundle {
            quote: B64.encode(&quote.attest),
            signature: B64.encode(&quote.signature),
            pcr_bank: "sha256".into(),
            pcrs: quote.pcrs,
            ak_public_pem: self.ak.key.to_pem(),
            ek_certificate_pem: self.ek_certificate.as_ref().map(|c| c.pem.clone()),
            event_log,
            checkpoint,
            checkpoint_key: key,
        })
    }
}

/// The query of `GET /v1/attestation`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttestationQuery {
    nonce: String,
}

/// `GET /v1/attestation?nonce=HEX` (16 to 64 bytes of nonce).
#[utoipa::path(
    get,
    path = "/v1/attestation",
    operation_id = "attestation",
    tag = "attestation",
    summary = "TPM quote binding a nonce and the ledger checkpoint",
    params(AttestationQuery),
    responses(
        (status = 200, description = "The quote and everything needed to verify it offline", body = attest::Bundle),
        super::openapi::QueryErrors,
    )
)]
pub async fn attestation(
    State(state): State<Arc<AppState>>,
    ApiQuery(q): ApiQuery<AttestationQuery>,
) -> Result<Json<Bundle>, ApiError> {
    let nonce =
        Nonce::from_hex(&q.nonce).map_err(|e| ApiError::bad_request("nonce", e.to_string()))?;
    if state.attest.is_none() {
        return Err(ApiError::internal("this appliance has no attestation key"));
    }
    let checkpoint = state.ledger.checkpoint().map_err(ApiError::internal)?;
    let key = state.ledger.verifier_key();
    let task = tokio::task::spawn_blocking(move || match &state.attest {
        Some(attestor) => attestor.bundle(&nonce, checkpoint, key),
        None => Err(ApiError::internal("this appliance has no attestation key")),
    });
    let bundle = task.await.map_err(ApiError::internal)??;
    Ok(Json(bundle))
}
