//! Enrollment of the appliance's AK by a regulator:
//! `GET /v1/attestation/enrollment` serves the EK certificate and the AK
//! (public area, PEM, TPM name); `POST /v1/attestation/challenge` runs
//! TPM2_ActivateCredential on a verifier's credential and returns the
//! secret the TPM recovered. The TPM recovers it only if the credential was
//! made for this TPM's EK and this AK, which is what the regulator learns.
//! A credential the TPM refuses is the caller's 400, recorded with its
//! reason.

use std::sync::Arc;

use attest::enrollment::{ChallengeRequest, ChallengeResponse, Enrollment};
use attest::{EkKind, TpmError};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::Attestor;
use crate::app::audit::Audit;
use crate::app::AppState;
use crate::error::{json_rejection, ApiError};

impl Attestor {
    /// What a regulator enrolls.
    fn enrollment(&self) -> Enrollment {
        let tpmt_public = self.ak.public.get(2..).unwrap_or_default();
        Enrollment {
            ek_certificate_pem: self.ek_certificate.as_ref().map(|c| c.pem.clone()),
            ak_public: B64.encode(&self.ak.public),
            ak_public_pem: self.ak.key.to_pem(),
            ak_name: hex::encode(attest::credential::name_of(tpmt_public)),
        }
    }

    /// The EK the served certificate certifies (RSA 2048 without one).
    fn ek_kind(&self) -> EkKind {
        self.ek_certificate
            .as_ref()
            .and_then(|c| EkKind::for_certificate_index(c.index))
            .unwrap_or(EkKind::Rsa2048)
    }

    /// Activates the credential (blocking: talks to the TPM).
    fn activate(&self, blob: &[u8], secret: &[u8]) -> Result<ChallengeResponse, ApiError> {
        let mut tpm = self
            .tpm
            .lock()
            .map_err(|_| ApiError::internal("the TPM lock is poisoned"))?;
        match tpm.activate_credential(&self.ak, self.ek_kind(), blob, secret) {
            Ok(recovered) => Ok(ChallengeResponse {
                secret: B64.encode(recovered.as_slice()),
            }),
            Err(TpmError::ActivateCredential(_)) => Err(ApiError::bad_request(
                "credential_blob",
                "the TPM refused the credential: it was not made for this appliance's EK and AK",
            )),
            Err(TpmError::MalformedCredential(what)) => Err(ApiError::bad_request(
                "credential_blob",
                format!("the {what} is not a well-formed TPM2B"),
            )),
            Err(e) => Err(ApiError::internal(format!("{:#}", anyhow::Error::new(e)))),
        }
    }
}

fn attestor(state: &AppState) -> Result<&Attestor, ApiError> {
    state
        .attest
        .as_ref()
        .ok_or_else(|| ApiError::internal("this appliance has no attestation key"))
}

fn audited(body: impl serde::Serialize, reason: &str, fingerprint: &str) -> Response {
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(Audit {
        resources: vec![format!("ak:sha256:{fingerprint}")],
        reason: Some(reason.to_owned()),
        ..Audit::default()
    });
    response
}

/// `GET /v1/attestation/enrollment`.
#[utoipa::path(
    get,
    path = "/v1/attestation/enrollment",
    operation_id = "attestation_enrollment",
    tag = "attestation",
    summary = "EK certificate and AK (public area, PEM, TPM name) for enrollment",
    responses(
        (status = 200, description = "What a regulator enrolls", body = attest::enrollment::Enrollment),
        crate::app::openapi::ReadErrors,
    )
)]
pub async fn enrollment(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let attestor = attestor(&state)?;
    let reason = match attestor.ek_certificate {
        Some(_) => "EK certificate and AK served for enrollment",
        None => "AK served for enrollment; the TPM has no EK certificate",
    };
    Ok(audited(
        attestor.enrollment(),
        reason,
        &attestor.ak.key.fingerprint(),
    ))
}

/// `POST /v1/attestation/challenge` with a [`ChallengeRequest`].
#[utoipa::path(
    post,
    path = "/v1/attestation/challenge",
    operation_id = "attestation_challenge",
    tag = "attestation",
    summary = "TPM2_ActivateCredential of a verifier's credential; the recovered secret",
    request_body = attest::enrollment::ChallengeRequest,
    responses(
        (status = 200, description = "The secret the TPM recovered", body = attest::enrollment::ChallengeResponse),
        crate::app::openapi::BodyErrors,
    )
)]
pub async fn challenge(
    State(state): State<Arc<AppState>>,
    body: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(json_rejection)?;
    let decode = |field: &str, text: &str| {
        B64.decode(text.trim())
            .map_err(|_| ApiError::bad_request(field, "not standard base64"))
    };
    let blob = decode("credential_blob", &request.credential_blob)?;
    let secret = decode("encrypted_secret", &request.encrypted_secret)?;
    attestor(&state)?;
    let task_state = state.clone();
    let task = tokio::task::spawn_blocking(move || attestor(&task_state)?.activate(&blob, &secret));
    let answer = task.await.map_err(ApiError::internal)??;
    let fingerprint = attestor(&state)?.ak.key.fingerprint();
    Ok(audited(
        answer,
        "credential activated with the AK and the EK",
        &fingerprint,
    ))
}
