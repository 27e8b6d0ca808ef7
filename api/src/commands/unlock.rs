//! Unsealing the master key: the step `serve`, `status` and the workflows
//! share. The key leaves the TPM only inside a zeroizing [`MasterKey`].

use std::path::Path;

use anyhow::{Context, Result};
use attest::{SealedObject, Tpm, TpmError};
use vault::datadir::DataDir;
use vault::keys::MasterKey;

/// An opened data directory with its sealed master key, before unsealing.
pub struct Sealed {
    /// The data directory.
    pub datadir: DataDir,
    /// The sealed master key and its PCR policy.
    pub sealed: SealedObject,
}

/// Opens the data directory and reads the sealed key, changing nothing.
pub fn open(data_dir: &Path) -> Result<Sealed> {
    let datadir = DataDir::open(data_dir)?;
    let sealed = SealedObject::read_from(&datadir.sealed_dir()).with_context(|| {
        format!(
            "cannot read the sealed master key in {}",
            data_dir.display()
        )
    })?;
    Ok(Sealed { datadir, sealed })
}

/// Opens the TPM named by `tcti`, saying which TCTI failed.
pub fn tpm(tcti: &str) -> Result<Tpm> {
    Tpm::open(tcti).with_context(|| format!("cannot open the TPM at `{tcti}`"))
}

/// Unseals the master key. A PCR mismatch names the PCRs that changed and
/// what to do; nothing on disk is touched either way.
pub fn unseal(tpm: &mut Tpm, sealed: &Sealed) -> Result<MasterKey> {
    let secret = match tpm.unseal(&sealed.sealed) {
        Ok(secret) => secret,
        Err(err @ TpmError::PcrMismatch { .. }) => {
            return Err(anyhow::Error::new(err).context(format!(
                "refusing to unseal the master key: the platform is not in the state it was \
                 sealed to (policy sha256:{}); if the change is legitimate, run `zonevault \
                 recover` with the recovery shares",
                sealed.sealed.selection
            )))
        }
        Err(err) => return Err(anyhow::Error::new(err).context("cannot unseal the master key")),
    };
    MasterKey::from_bytes(&secret).context("the unsealed master key has the wrong length")
}

/// Opens the ledger of `datadir` with the checkpoint key derived from
/// `master`, logging a torn tail that was cut off and an `entries.idx` that
/// had to be rebuilt.
pub fn open_ledger(
    datadir: &DataDir,
    master: &MasterKey,
    appliance_id: &str,
) -> Result<vault::ledger::Ledger> {
    let seed = zeroize::Zeroizing::new(*master.ledger_signing_seed().ed25519_seed_bytes());
    let (ledger, report) = vault::ledger::Ledger::open(
        datadir.root(),
        appliance_id,
        seed,
        vault::ledger::LedgerOptions::default(),
    )
    .context("cannot open the audit ledger")?;
    if let Some(torn) = report.torn_tail {
        tracing::warn!(
            index = torn.index,
            offset = torn.offset,
            bytes = torn.bytes_removed,
            "ledger: a torn final record was cut off at startup"
        );
    }
    if let Some(from) = report.index_repaired_from {
        tracing::info!(
            from,
            "ledger: entries.idx did not match entries.log and was rebuilt from this entry"
        );
    }
    Ok(ledger)
}

/// Appends an appliance event (`system` identity) to the ledger and signs a
/// checkpoint over it, so the event is durable and covered on return.
pub fn record_event(
    ledger: &vault::ledger::Ledger,
    event: &str,
    details: serde_json::Value,
) -> Result<u64> {
    use vault::ledger::{Decision, EntryKind, LedgerEntry};
    let mut entry = LedgerEntry::new(EntryKind::Event, "system", "EVENT", event, Decision::Allow);
    entry.details = Some(details);
    let index = ledger
        .append(&entry)
        .with_context(|| format!("cannot record `{event}` in the audit ledger"))?;
    ledger
        .checkpoint()
        .context("cannot sign a ledger checkpoint")?;
    Ok(index)
}
