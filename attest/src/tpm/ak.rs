//! The attestation key and quotes.
//!
//! The AK is a restricted ECC NIST P-256 signing key (ECDSA-SHA256) under
//! the storage primary: restricted, so the TPM signs only digests it
//! computed itself (a quote cannot be forged by asking it to sign
//! arbitrary bytes). Every quote re-creates the primary, loads the AK,
//! quotes and flushes both. Also reads the EK certificate from NV.

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::{NvIndexTpmHandle, ObjectHandle, TpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Data, EccPoint, EccScheme, HashScheme, KeyDerivationFunctionScheme, Public, PublicBuilder,
    PublicEccParametersBuilder, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::traits::Marshall;
use tss_esapi::Error as EsysError;

use super::seal::{marshal_private, marshal_public, unmarshal_private, unmarshal_public};
use super::{selection_list, Tpm, TpmError};
use crate::ak::{pem_encode, AkBlob, AkPublicKey};
use crate::pcr::{PcrSelection, PcrValues};
use crate::verify::tpms;

/// NV indices of EK certificates (TCG EK Credential Profile): RSA 2048,
/// ECC P-256, RSA 3072, ECC P-384.
const EK_CERT_INDICES: [u32; 4] = [0x01c0_0002, 0x01c0_000a, 0x01c0_001c, 0x01c0_0016];
/// Bytes read per TPM2_NV_Read (below every TPM's MAX_NV_BUFFER_SIZE).
const NV_CHUNK: u16 = 512;
/// How often a quote is retried when a PCR moved between quote and read.
const QUOTE_ATTEMPTS: usize = 3;

/// An EK certificate as read from NV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkCertificate {
    /// The NV index it was read from (says which EK it certifies).
    pub index: u32,
    /// The certificate, PEM.
    pub pem: String,
}

/// A quote as the TPM produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST (the signed bytes).
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// The quoted PCR values (they hash to the quote's pcrDigest).
    pub pcrs: PcrValues,
}

impl Tpm {
    /// Creates a new attestation key under the storage primary.
    pub fn create_ak(&mut self) -> Result<AkBlob, TpmError> {
        let template = ak_template().map_err(TpmError::CreateAk)?;
        let srk = self.storage_key()?;
        let created = self.flushing(srk.into(), |tpm| {
            tpm.context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create(srk, template, None, None, None, None)
                })
                .map_err(TpmError::CreateAk)
        })?;
        let key = ak_public_key(&created.out_public)?;
        Ok(AkBlob {
            public: marshal_public(created.out_public)?,
            private: marshal_private(&created.out_private),
            key,
        })
    }

    /// Quotes the selected PCRs with the AK over `qualifying_data` (at most
    /// 64 bytes), and reads the values the quote covers.
    pub fn quote(
        &mut self,
        ak: &AkBlob,
        sel: &PcrSelection,
        qualifying_data: &[u8],
    ) -> Result<Quote, TpmError> {
        for _ in 0..QUOTE_ATTEMPTS {
            let (attest, signature) = self.quote_once(ak, sel, qualifying_data)?;
            let pcrs = self.read_pcrs(sel)?;
            if quoted_digest_matches(&attest, &pcrs) {
                return Ok(Quote {
                    attest,
                    signature,
                    pcrs,
                });
            }
        }
        Err(TpmError::PcrsMoving)
    }

    fn quote_once(
        &mut self,
        ak: &AkBlob,
        sel: &PcrSelection,
        qualifying_data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), TpmError> {
        let data = Data::try_from(qualifying_data.to_vec()).map_err(TpmError::Quote)?;
        let pcrs = selection_list(sel.indices())?;
        let public = unmarshal_public(&ak.public)?;
        let private = unmarshal_private(&ak.private)?;
        let scheme = SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        };
        let srk = self.storage_key()?;
        self.flushing(srk.into(), |tpm| {
            let key = tpm
                .context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(srk, private, public)
                })
                .map_err(TpmError::LoadAk)?;
            tpm.flushing(key.into(), |tpm| {
                let (attest, signature) = tpm
                    .context
                    .execute_with_session(Some(AuthSession::Password), |ctx| {
                        ctx.quote(key, data, scheme, pcrs)
                    })
                    .map_err(TpmError::Quote)?;
                let marshal = |source| TpmError::Marshal {
                    what: "quote",
                    source,
                };
                Ok((
                    attest.marshall().map_err(marshal)?,
                    signature.marshall().map_err(marshal)?,
                ))
            })
        })
    }

    /// The TPM's EK certificate (DER → PEM) from the first populated
    /// standard NV index, or `None` if it has none.
    pub fn ek_certificate_pem(&mut self) -> Result<Option<String>, TpmError> {
        Ok(self.ek_certificate()?.map(|cert| cert.pem))
    }

    /// The TPM's EK certificate from the first populated standard NV index
    /// (RSA 2048 first), with the index it came from.
    pub fn ek_certificate(&mut self) -> Result<Option<EkCertificate>, TpmError> {
        for index in EK_CERT_INDICES {
            if let Some(der) = self.read_nv(index)? {
                return Ok(Some(EkCertificate {
                    index,
                    pem: pem_encode(&der, "CERTIFICATE"),
                }));
            }
        }
        Ok(None)
    }

    /// The contents of NV index `index`, or `None` if it is not defined.
    fn read_nv(&mut self, index: u32) -> Result<Option<Vec<u8>>, TpmError> {
        let nv_err = |source| TpmError::NvRead { index, source };
        let tpm_handle = NvIndexTpmHandle::new(index).map_err(nv_err)?;
        let Ok(object) = self
            .context
            .tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle))
        else {
            return Ok(None);
        };
        let result = self.read_nv_object(object, index);
        let mut object = object;
        let _ = self.context.tr_close(&mut object);
        result.map(Some)
    }

    fn read_nv_object(&mut self, object: ObjectHandle, index: u32) -> Result<Vec<u8>, TpmError> {
        let nv_err = |source| TpmError::NvRead { index, source };
        let handle = object.into();
        let (public, _) = self
            .context
            .execute_without_session(|ctx| ctx.nv_read_public(handle))
            .map_err(nv_err)?;
        let size = public.data_size();
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let offset = u16::try_from(out.len()).map_err(|_| nv_err(size_error()))?;
            let want = u16::try_from(size - out.len())
                .unwrap_or(NV_CHUNK)
                .min(NV_CHUNK);
            let chunk = self
                .context
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.nv_read(NvAuth::Owner, handle, want, offset)
                })
                .map_err(nv_err)?;
            if chunk.value().is_empty() {
                return Err(nv_err(size_error()));
            }
            out.extend_from_slice(chunk.value());
        }
        Ok(out)
    }
}

fn size_error() -> EsysError {
    EsysError::WrapperError(tss_esapi::WrapperErrorKind::WrongParamSize)
}

/// Does the quote's pcrDigest match `pcrs`? (false if it does not parse)
fn quoted_digest_matches(attest: &[u8], pcrs: &PcrValues) -> bool {
    use sha2::{Digest, Sha256};
    let Ok(info) = tpms::parse_quote(attest) else {
        return false;
    };
    let mut h = Sha256::new();
    for (_, v) in pcrs.iter() {
        h.update(v);
    }
    h.finalize().as_slice() == info.pcr_digest.as_slice()
}

/// The AK public key from its TPM public area.
fn ak_public_key(public: &Public) -> Result<AkPublicKey, TpmError> {
    match public {
        Public::Ecc { unique, .. } => {
            AkPublicKey::from_coordinates(unique.x().value(), unique.y().value())
                .map_err(|_| TpmError::AkKind)
        }
        _ => Err(TpmError::AkKind),
    }
}

/// Restricted ECC P-256 signing key, ECDSA-SHA256, no auth value needed
/// beyond the empty one, never leaves this TPM.
fn ak_template() -> Result<Public, EsysError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_sign_encrypt(true)
        .build()?;
    let ecc = PublicEccParametersBuilder::new()
        .with_symmetric(SymmetricDefinitionObject::Null)
        .with_ecc_scheme(EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)))
        .with_curve(EccCurve::NistP256)
        .with_key_derivation_function_scheme(KeyDerivationFunctionScheme::Null)
        .with_is_signing_key(true)
        .with_is_decryption_key(false)
        .with_restricted(true)
        .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(ecc)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}
