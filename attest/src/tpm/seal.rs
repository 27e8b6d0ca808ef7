//! Sealing a caller's secret to the current PCR values, and unsealing it.
//!
//! Owns the storage-key template (re-created from the template on every
//! call, never persisted), the sealed-object template and the sessions: the
//! create and unseal sessions are salted with the storage key and encrypt
//! parameters, so the secret never crosses the TPM interface in clear. The
//! secret itself always comes from the caller; nothing here generates keys.

use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Digest, EccPoint, EccScheme, KeyDerivationFunctionScheme, KeyedHashScheme, Private, Public,
    PublicBuffer, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters,
    SensitiveData, SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::{Error as EsysError, WrapperErrorKind};
use zeroize::Zeroizing;

use super::{selection_list, Tpm, TpmError};
use crate::pcr::PcrSelection;
use crate::sealed::SealedObject;

/// The most a KeyedHash sealed object can hold (MAX_SYM_DATA).
const MAX_SECRET_LEN: usize = 128;

impl Tpm {
    /// Seals `secret` (1..=128 bytes) so that only this TPM, with the
    /// selected PCRs at their current values, can unseal it.
    pub fn seal(&mut self, secret: &[u8], sel: &PcrSelection) -> Result<SealedObject, TpmError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(TpmError::SecretSize { len: secret.len() });
        }
        let sensitive = SensitiveData::try_from(secret.to_vec()).map_err(TpmError::Create)?;
        let expected = self.read_pcrs(sel)?;
        let Some(policy) = expected.policy_digest(sel) else {
            return Err(TpmError::PcrReadIncomplete {
                missing: sel.indices().to_vec(),
            });
        };
        let template = sealed_template(&policy).map_err(TpmError::Create)?;
        let srk = self.storage_key()?;
        let (public, private) = self.flushing(srk.into(), |tpm| {
            let session = tpm.salted_session(srk, SessionType::Hmac, true)?;
            tpm.flushing(session_object(session), |tpm| {
                tpm.context
                    .execute_with_session(Some(session), |ctx| {
                        ctx.create(srk, template, None, Some(sensitive), None, None)
                    })
                    .map_err(TpmError::Create)
            })
            .map(|created| (created.out_public, created.out_private))
        })?;
        Ok(SealedObject {
            public: marshal_public(public)?,
            private: marshal_private(&private),
            selection: sel.clone(),
            expected,
        })
    }

    /// Unseals `sealed`. If a selected PCR no longer has the value it was
    /// sealed against, fails with [`TpmError::PcrMismatch`] naming exactly
    /// the PCRs that changed.
    pub fn unseal(&mut self, sealed: &SealedObject) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        self.check_pcrs(sealed)?;
        let public = unmarshal_public(&sealed.public)?;
        let private = unmarshal_private(&sealed.private)?;
        let result = self.unseal_blob(public, private, &sealed.selection);
        match result {
            // The PCRs may have moved between the check and the policy.
            Err(TpmError::PolicyPcr(_) | TpmError::Unseal(_)) => {
                self.check_pcrs(sealed)?;
                result
            }
            other => other,
        }
    }

    /// `PcrMismatch` unless every selected PCR holds its expected value.
    fn check_pcrs(&mut self, sealed: &SealedObject) -> Result<(), TpmError> {
        let current = self.read_pcrs(&sealed.selection)?;
        let changed = sealed.expected.changed(&current, &sealed.selection);
        if changed.is_empty() {
            Ok(())
        } else {
            Err(TpmError::PcrMismatch { changed })
        }
    }

    fn unseal_blob(
        &mut self,
        public: Public,
        private: Private,
        sel: &PcrSelection,
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let srk = self.storage_key()?;
        self.flushing(srk.into(), |tpm| {
            let object = tpm
                .context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(srk, private, public)
                })
                .map_err(TpmError::Load)?;
            tpm.flushing(object.into(), |tpm| tpm.unseal_loaded(srk, object, sel))
        })
    }

    /// PolicyPCR in a salted policy session, then TPM2_Unseal with the
    /// response encrypted.
    fn unseal_loaded(
        &mut self,
        srk: KeyHandle,
        object: KeyHandle,
        sel: &PcrSelection,
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let pcrs = selection_list(sel.indices())?;
        // TPM2_Unseal has no command parameter to decrypt: encrypt only.
        let session = self.salted_session(srk, SessionType::Policy, false)?;
        self.flushing(session_object(session), |tpm| {
            let policy_session = PolicySession::try_from(session).map_err(TpmError::PolicyPcr)?;
            tpm.context
                .execute_without_session(|ctx| {
                    ctx.policy_pcr(policy_session, Digest::default(), pcrs)
                })
                .map_err(TpmError::PolicyPcr)?;
            let data = tpm
                .context
                .execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                .map_err(TpmError::Unseal)?;
            Ok(Zeroizing::new(data.value().to_vec()))
        })
    }

    /// The primary storage key, re-created from its template (same seed,
    /// same template, same key). The caller must flush it.
    pub(super) fn storage_key(&mut self) -> Result<KeyHandle, TpmError> {
        let template = storage_key_template().map_err(TpmError::CreatePrimary)?;
        self.context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            })
            .map(|primary| primary.key_handle)
            .map_err(TpmError::CreatePrimary)
    }

    /// A session salted with the storage key (AES-128-CFB parameter
    /// encryption, SHA-256), encrypting responses and, if `decrypt`, the
    /// first command parameter. The caller must flush it.
    pub(super) fn salted_session(
        &mut self,
        srk: KeyHandle,
        kind: SessionType,
        decrypt: bool,
    ) -> Result<AuthSession, TpmError> {
        let session = self
            .context
            .start_auth_session(
                Some(srk),
                None,
                None,
                kind,
                SymmetricDefinition::AES_128_CFB,
                HashingAlgorithm::Sha256,
            )
            .map_err(TpmError::StartSession)?
            .ok_or(TpmError::StartSession(EsysError::WrapperError(
                WrapperErrorKind::WrongValueFromTpm,
            )))?;
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .with_decrypt(decrypt)
            .with_encrypt(true)
            .build();
        if let Err(e) = self
            .context
            .tr_sess_set_attributes(session, attributes, mask)
        {
            self.flush(session_object(session))?;
            return Err(TpmError::StartSession(e));
        }
        Ok(session)
    }
}

fn session_object(session: AuthSession) -> ObjectHandle {
    SessionHandle::from(session).into()
}

/// The TCG standard SRK template: ECC NIST P-256, restricted decryption key,
/// AES-128-CFB, empty auth policy, all-zero unique.
fn storage_key_template() -> Result<Public, EsysError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let ecc = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::AES_128_CFB)
        .with_ecc_scheme(EccScheme::Null)
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(false)
        .with_is_decryption_key(true)
        .with_restricted(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(ecc)
        .with_ecc_unique_identifier(EccPoint::new(
            vec![0u8; 32].try_into()?,
            vec![0u8; 32].try_into()?,
        ))
        .build()
}

/// A KeyedHash data object that only a policy session can unseal, holding
/// caller-supplied data.
fn sealed_template(policy: &[u8; 32]) -> Result<Public, EsysError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(true)
        .with_user_with_auth(false)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(Digest::try_from(policy.to_vec())?)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
}

pub(super) fn marshal_public(public: Public) -> Result<Vec<u8>, TpmError> {
    let marshal = |source| TpmError::Marshal {
        what: "public",
        source,
    };
    PublicBuffer::try_from(public)
        .and_then(|buffer| buffer.marshall())
        .map_err(marshal)
}

pub(super) fn unmarshal_public(bytes: &[u8]) -> Result<Public, TpmError> {
    let marshal = |source| TpmError::Marshal {
        what: "public",
        source,
    };
    let buffer = PublicBuffer::unmarshall(bytes).map_err(marshal)?;
    Public::try_from(buffer).map_err(marshal)
}

/// TPM2B_PRIVATE: a big-endian u16 size, then the bytes.
pub(super) fn marshal_private(private: &Private) -> Vec<u8> {
    let bytes = private.value();
    let mut out = Vec::with_capacity(2 + bytes.len());
    // A Private holds at most a few hundred bytes, well under u16::MAX.
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

pub(super) fn unmarshal_private(bytes: &[u8]) -> Result<Private, TpmError> {
    let malformed = TpmError::Marshal {
        what: "private",
        source: EsysError::WrapperError(WrapperErrorKind::WrongParamSize),
    };
    let [hi, lo, rest @ ..] = bytes else {
        return Err(malformed);
    };
    if usize::from(u16::from_be_bytes([*hi, *lo])) != rest.len() {
        return Err(malformed);
    }
    Private::try_from(rest.to_vec()).map_err(|source| TpmError::Marshal {
        what: "private",
        source,
    })
}
