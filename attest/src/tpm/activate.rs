//! Credential activation, the appliance's half: TPM2_ActivateCredential
//! with the AK and the EK, which recovers a verifier's secret only if the
//! credential was made for this TPM's EK and an object with the AK's name.
//!
//! The EK is re-created from the TCG standard template (EK Credential
//! Profile, template L-1 for RSA 2048 and ECC P-256): same endorsement seed,
//! same template, same key as the one certified. Its auth policy is
//! PolicySecret(TPM_RH_ENDORSEMENT), satisfied in a policy session with the
//! (empty) endorsement hierarchy password. The storage key is flushed once
//! the AK is loaded, so at most two objects occupy swtpm's three slots.

use tss_esapi::abstraction::ek::create_ek_public_from_default_template_2;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, DefaultKey};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{EncryptedSecret, IdObject, Public, SymmetricDefinition};
use tss_esapi::{Error as EsysError, WrapperErrorKind};
use zeroize::Zeroizing;

use super::seal::{unmarshal_private, unmarshal_public};
use super::{Tpm, TpmError};
use crate::ak::{AkBlob, AkPublicKey};
use crate::credential::EkPublic;

/// Which standard EK the verifier encrypted to (the key its certificate
/// certifies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EkKind {
    /// RSA 2048, template L-1 (NV index 0x01c00002 holds its certificate).
    Rsa2048,
    /// ECC NIST P-256, template L-2 (NV index 0x01c0000a).
    EccP256,
}

impl EkKind {
    /// The kind whose certificate lives at NV index `index`, if this
    /// appliance can activate credentials with it.
    pub fn for_certificate_index(index: u32) -> Option<EkKind> {
        match index {
            0x01c0_0002 => Some(EkKind::Rsa2048),
            0x01c0_000a => Some(EkKind::EccP256),
            _ => None,
        }
    }

    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
        }
    }
}

impl Tpm {
    /// TPM2_ActivateCredential of `credential_blob` (TPM2B_ID_OBJECT) and
    /// `encrypted_secret` (TPM2B_ENCRYPTED_SECRET) with `ak` and the EK of
    /// kind `ek`: the secret the verifier put in, or
    /// [`TpmError::ActivateCredential`] if they were not made for this
    /// TPM's EK and this AK.
    pub fn activate_credential(
        &mut self,
        ak: &AkBlob,
        ek: EkKind,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let id_object = IdObject::try_from(tpm2b_contents(credential_blob, "credential blob")?)
            .map_err(|_| TpmError::MalformedCredential("credential blob"))?;
        let secret =
            EncryptedSecret::try_from(tpm2b_contents(encrypted_secret, "encrypted secret")?)
                .map_err(|_| TpmError::MalformedCredential("encrypted secret"))?;
        let ak_handle = self.load_ak_alone(ak)?;
        let recovered = self.flushing(ak_handle.into(), |tpm| {
            let ek_handle = tpm.endorsement_key(ek)?;
            tpm.flushing(ek_handle.into(), |tpm| {
                let session = tpm.endorsement_policy_session()?;
                tpm.flushing(session_object(session), |tpm| {
                    tpm.context
                        .execute_with_sessions(
                            (Some(AuthSession::Password), Some(session), None),
                            |ctx| ctx.activate_credential(ak_handle, ek_handle, id_object, secret),
                        )
                        .map_err(TpmError::ActivateCredential)
                })
            })
        })?;
        Ok(Zeroizing::new(recovered.value().to_vec()))
    }

    /// The public key of this TPM's EK of kind `kind` (what its EK
    /// certificate, if any, certifies).
    pub fn endorsement_public(&mut self, kind: EkKind) -> Result<EkPublic, TpmError> {
        let template = ek_template(kind)?;
        let created = self
            .context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map_err(TpmError::CreateEk)?;
        let handle = created.key_handle;
        self.flushing(handle.into(), |_| ek_public(&created.out_public))
    }

    /// Loads the AK under the storage key and flushes the storage key.
    fn load_ak_alone(&mut self, ak: &AkBlob) -> Result<KeyHandle, TpmError> {
        let public = unmarshal_public(&ak.public)?;
        let private = unmarshal_private(&ak.private)?;
        let srk = self.storage_key()?;
        self.flushing(srk.into(), |tpm| {
            tpm.context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(srk, private, public)
                })
                .map_err(TpmError::LoadAk)
        })
    }

    /// The EK of kind `kind`, re-created from the standard template. The
    /// caller must flush it.
    fn endorsement_key(&mut self, kind: EkKind) -> Result<KeyHandle, TpmError> {
        let template = ek_template(kind)?;
        self.context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map(|primary| primary.key_handle)
            .map_err(TpmError::CreateEk)
    }

    /// A policy session satisfying the EK's policy, PolicySecret with the
    /// endorsement hierarchy. The caller must flush it.
    fn endorsement_policy_session(&mut self) -> Result<AuthSession, TpmError> {
        let session = self
            .context
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(TpmError::StartSession)?
            .ok_or(TpmError::StartSession(EsysError::WrapperError(
                WrapperErrorKind::WrongValueFromTpm,
            )))?;
        let secret = PolicySession::try_from(session).and_then(|policy| {
            self.context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.policy_secret(
                        policy,
                        AuthHandle::Endorsement,
                        Default::default(),
                        Default::default(),
                        Default::default(),
                        None,
                    )
                })
        });
        if let Err(e) = secret {
            self.flush(session_object(session))?;
            return Err(TpmError::PolicySecret(e));
        }
        Ok(session)
    }
}

fn ek_template(kind: EkKind) -> Result<Public, TpmError> {
    create_ek_public_from_default_template_2(kind.selection(), None::<DefaultKey>)
        .map_err(TpmError::CreateEk)
}

/// The verifier's view of an EK public area.
fn ek_public(public: &Public) -> Result<EkPublic, TpmError> {
    let kind = || TpmError::EkKind;
    match public {
        Public::Rsa {
            unique, parameters, ..
        } => {
            let exponent = match parameters.exponent().value() {
                0 => 65537,
                e => e,
            };
            Ok(EkPublic::rsa(unique.value(), &exponent.to_be_bytes()))
        }
        Public::Ecc { unique, .. } => {
            let key = AkPublicKey::from_coordinates(unique.x().value(), unique.y().value())
                .map_err(|_| kind())?;
            Ok(EkPublic::EccP256 {
                point: *key.point(),
            })
        }
        _ => Err(kind()),
    }
}

fn session_object(session: AuthSession) -> ObjectHandle {
    SessionHandle::from(session).into()
}

/// The contents of a marshalled TPM2B (u16 size, then exactly that much).
fn tpm2b_contents(bytes: &[u8], what: &'static str) -> Result<Vec<u8>, TpmError> {
    match bytes {
        [hi, lo, rest @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() => {
            Ok(rest.to_vec())
        }
        _ => Err(TpmError::MalformedCredential(what)),
    }
}
