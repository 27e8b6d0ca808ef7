//! The one owner of the TPM connection (`tss_esapi::Context`).
//!
//! Owns opening the TPM from a TCTI string, reading and extending sha256
//! PCRs, and (in `seal.rs`) sealing and unsealing under a PolicyPCR
//! policy, (in `ak.rs`) the AK, quotes and the EK certificate, and (in
//! `activate.rs`) credential activation with the AK and the EK. swtpm over TCP has no resource manager and three transient slots,
//! so every transient handle created here is flushed before the call that
//! created it returns, on error paths too.

mod activate;
mod ak;
mod error;
mod seal;

use std::str::FromStr;

use tss_esapi::handles::{ObjectHandle, PcrHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, DigestValues, PcrSelectSize, PcrSelectionList, PcrSlot};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::Context;

pub use activate::EkKind;
pub use ak::{EkCertificate, Quote};
pub use error::TpmError;

use crate::pcr::{PcrSelection, PcrValues, MAX_PCR_INDEX};

/// A connection to one TPM. Not `Debug`: it is the path to every secret.
pub struct Tpm {
    context: Context,
}

impl Tpm {
    /// Opens the TPM named by `tcti` (`device:/dev/tpmrm0`,
    /// `swtpm:host=127.0.0.1,port=P`, …).
    ///
    /// Sets `TSS2_LOG=all+none` in the process environment unless it is
    /// already set, so ESYS does not print expected TPM errors to stderr.
    pub fn open(tcti: &str) -> Result<Tpm, TpmError> {
        let conf = TctiNameConf::from_str(tcti).map_err(|source| TpmError::Tcti {
            tcti: tcti.to_owned(),
            source,
        })?;
        if std::env::var_os("TSS2_LOG").is_none() {
            std::env::set_var("TSS2_LOG", "all+none");
        }
        let context = Context::new(conf).map_err(|source| TpmError::Open {
            tcti: tcti.to_owned(),
            source,
        })?;
        Ok(Tpm { context })
    }

    /// Reads the current sha256 values of the selected PCRs.
    ///
    /// TPM2_PCR_Read returns at most 8 digests per call, so this asks again
    /// for whatever the TPM left out until every PCR has been read.
    pub fn read_pcrs(&mut self, sel: &PcrSelection) -> Result<PcrValues, TpmError> {
        let mut values = PcrValues::new();
        let mut remaining: Vec<u8> = sel.indices().to_vec();
        while !remaining.is_empty() {
            let request = selection_list(&remaining)?;
            let (_, returned, digests) = self
                .context
                .execute_without_session(|ctx| ctx.pcr_read(request))
                .map_err(TpmError::PcrRead)?;
            let read = returned_indices(&returned);
            if read.is_empty() || read.len() != digests.value().len() {
                return Err(TpmError::PcrReadIncomplete { missing: remaining });
            }
            for (index, digest) in read.iter().zip(digests.value()) {
                let value: [u8; 32] =
                    digest
                        .value()
                        .try_into()
                        .map_err(|_| TpmError::PcrReadIncomplete {
                            missing: vec![*index],
                        })?;
                if remaining.contains(index) {
                    values.insert(*index, value);
                }
            }
            remaining.retain(|i| !read.contains(i));
        }
        Ok(values)
    }

    /// Extends PCR `index` of the sha256 bank with `digest`.
    pub fn extend_pcr(&mut self, index: u8, digest: &[u8; 32]) -> Result<(), TpmError> {
        let handle = pcr_handle(index)?;
        let extend_err = |source| TpmError::PcrExtend { index, source };
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(extend_err)?,
        );
        self.context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.pcr_extend(handle, values)
            })
            .map_err(extend_err)
    }

    /// Flushes a transient object or session from the TPM.
    fn flush(&mut self, handle: ObjectHandle) -> Result<(), TpmError> {
        self.context.flush_context(handle).map_err(TpmError::Flush)
    }

    /// Runs `f`, then flushes `handle` whatever `f` returned. The first error
    /// wins; a failed flush turns a success into an error.
    fn flushing<T>(
        &mut self,
        handle: ObjectHandle,
        f: impl FnOnce(&mut Tpm) -> Result<T, TpmError>,
    ) -> Result<T, TpmError> {
        let result = f(self);
        let flushed = self.flush(handle);
        let value = result?;
        flushed?;
        Ok(value)
    }
}

/// A tss-esapi selection of `indices` in the sha256 bank (3-octet bitmap).
fn selection_list(indices: &[u8]) -> Result<PcrSelectionList, TpmError> {
    let slots = indices
        .iter()
        .map(|i| pcr_slot(*i))
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionList::builder()
        .with_size_of_select(PcrSelectSize::ThreeOctets)
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(TpmError::PcrRead)
}

fn pcr_slot(index: u8) -> Result<PcrSlot, TpmError> {
    if index > MAX_PCR_INDEX {
        return Err(TpmError::NoSuchPcr(index));
    }
    PcrSlot::try_from(1u32 << index).map_err(|_| TpmError::NoSuchPcr(index))
}

fn pcr_handle(index: u8) -> Result<PcrHandle, TpmError> {
    if index > MAX_PCR_INDEX {
        return Err(TpmError::NoSuchPcr(index));
    }
    // ESYS_TR_PCR0..ESYS_TR_PCR31 are the values 0..31.
    PcrHandle::try_from(u32::from(index)).map_err(|_| TpmError::NoSuchPcr(index))
}

/// The sha256-bank indices in a returned selection, ascending (the order
/// of the digests the TPM returns with it).
fn returned_indices(list: &PcrSelectionList) -> Vec<u8> {
    let mut out: Vec<u8> = list
        .get_selections()
        .iter()
        .filter(|s| s.hashing_algorithm() == HashingAlgorithm::Sha256)
        .flat_map(|s| s.selected())
        .filter_map(|slot| u8::try_from(u32::from(slot).trailing_zeros()).ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
