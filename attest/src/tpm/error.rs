//! Errors of the TPM side: one variant per TPM operation, carrying the
//! `tss_esapi::Error` (whose Display includes the TPM response code) as its
//! source, plus the PCR mismatch a caller acts on.

/// A TPM operation failed. Print with the source chain (`{:#}` in anyhow)
/// to see the response code.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TCTI string was not understood.
    #[error("invalid TCTI {tcti:?}")]
    Tcti {
        /// The TCTI string as given.
        tcti: String,
        /// Why tss-esapi rejected it.
        source: tss_esapi::Error,
    },
    /// Connecting to the TPM failed.
    #[error("cannot open TPM at {tcti:?}")]
    Open {
        /// The TCTI string as given.
        tcti: String,
        /// The ESYS error.
        source: tss_esapi::Error,
    },
    /// TPM2_CreatePrimary (the storage key) failed.
    #[error("TPM2_CreatePrimary (storage key) failed")]
    CreatePrimary(#[source] tss_esapi::Error),
    /// TPM2_Create (the sealed object) failed.
    #[error("TPM2_Create (sealed object) failed")]
    Create(#[source] tss_esapi::Error),
    /// TPM2_Load of the sealed object failed (e.g. it belongs to another TPM).
    #[error("TPM2_Load (sealed object) failed")]
    Load(#[source] tss_esapi::Error),
    /// TPM2_StartAuthSession or setting its attributes failed.
    #[error("TPM2_StartAuthSession failed")]
    StartSession(#[source] tss_esapi::Error),
    /// TPM2_PolicyPCR or TPM2_PolicyGetDigest failed.
    #[error("TPM2_PolicyPCR failed")]
    PolicyPcr(#[source] tss_esapi::Error),
    /// TPM2_Unseal failed.
    #[error("TPM2_Unseal failed")]
    Unseal(#[source] tss_esapi::Error),
    /// TPM2_Create of the attestation key failed.
    #[error("TPM2_Create (attestation key) failed")]
    CreateAk(#[source] tss_esapi::Error),
    /// TPM2_Load of the attestation key failed (e.g. it belongs to another TPM).
    #[error("TPM2_Load (attestation key) failed")]
    LoadAk(#[source] tss_esapi::Error),
    /// TPM2_Quote failed.
    #[error("TPM2_Quote failed")]
    Quote(#[source] tss_esapi::Error),
    /// TPM2_CreatePrimary of the endorsement key failed.
    #[error("TPM2_CreatePrimary (endorsement key) failed")]
    CreateEk(#[source] tss_esapi::Error),
    /// TPM2_PolicySecret with the endorsement hierarchy failed.
    #[error("TPM2_PolicySecret (endorsement hierarchy) failed")]
    PolicySecret(#[source] tss_esapi::Error),
    /// TPM2_ActivateCredential refused the credential: it was not made
    /// for this TPM's EK and this AK (or was altered).
    #[error(
        "TPM2_ActivateCredential failed: the credential was not made for this TPM's EK and AK"
    )]
    ActivateCredential(#[source] tss_esapi::Error),
    /// The endorsement key is neither RSA nor ECC P-256.
    #[error("the endorsement key is neither RSA 2048 nor ECC P-256")]
    EkKind,
    /// A credential part is not a well-formed TPM2B of the right size.
    #[error("malformed credential: the {0} is not a well-formed TPM2B")]
    MalformedCredential(&'static str),
    /// The PCRs kept changing between quoting and reading them.
    #[error("the quoted PCRs kept changing while they were quoted")]
    PcrsMoving,
    /// The attestation key is not an ECC key.
    #[error("the attestation key is not an ECC P-256 key")]
    AkKind,
    /// Reading an NV index (the EK certificate) failed.
    #[error("TPM2_NV_Read of NV index {index:#010x} failed")]
    NvRead {
        /// The NV index.
        index: u32,
        /// The ESYS error.
        source: tss_esapi::Error,
    },
    /// TPM2_PCR_Read failed.
    #[error("TPM2_PCR_Read failed")]
    PcrRead(#[source] tss_esapi::Error),
    /// The TPM did not return every requested PCR.
    #[error("TPM2_PCR_Read did not return PCR(s) {missing:?}")]
    PcrReadIncomplete {
        /// The indices it left out.
        missing: Vec<u8>,
    },
    /// TPM2_PCR_Extend failed.
    #[error("TPM2_PCR_Extend of PCR {index} failed")]
    PcrExtend {
        /// The PCR being extended.
        index: u8,
        /// The ESYS error.
        source: tss_esapi::Error,
    },
    /// TPM2_FlushContext failed (a transient slot may be leaked).
    #[error("TPM2_FlushContext failed")]
    Flush(#[source] tss_esapi::Error),
    /// Converting a TPM structure to or from bytes failed.
    #[error("malformed sealed object: {what}")]
    Marshal {
        /// Which structure.
        what: &'static str,
        /// The marshalling error.
        source: tss_esapi::Error,
    },
    /// A PCR index outside 0..=23 was given.
    #[error("PCR {0} does not exist (PCR indices are 0..=23)")]
    NoSuchPcr(u8),
    /// The secret is empty or larger than a sealed object can hold (128 bytes).
    #[error("a sealed secret must be 1..=128 bytes, got {len}")]
    SecretSize {
        /// The length given.
        len: usize,
    },
    /// PCRs covered by the policy differ from the values sealed against.
    #[error("{}", mismatch_message(changed))]
    PcrMismatch {
        /// The PCR indices whose value changed since sealing, ascending.
        changed: Vec<u8>,
    },
}

fn mismatch_message(changed: &[u8]) -> String {
    let list: Vec<String> = changed.iter().map(u8::to_string).collect();
    match list.as_slice() {
        [one] => format!("PCR {one} changed since the key was sealed"),
        _ => format!("PCRs {} changed since the key was sealed", list.join(", ")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mismatch_names_the_pcrs() {
        let one = TpmError::PcrMismatch { changed: vec![7] };
        assert_eq!(one.to_string(), "PCR 7 changed since the key was sealed");
        let two = TpmError::PcrMismatch {
            changed: vec![0, 7],
        };
        assert_eq!(
            two.to_string(),
            "PCRs 0, 7 changed since the key was sealed"
        );
    }
}
