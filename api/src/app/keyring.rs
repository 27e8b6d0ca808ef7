//! The server's hold on the key hierarchy below the master key.
//!
//! The server keeps the zone wrapping key (derived from the master key with
//! its own HKDF label), not the master key itself: the master key is dropped
//! once startup has derived what the server needs. The wrapping key lives
//! here and nowhere else in the server, behind an `Arc` (never cloned out),
//! reachable only through the three operations below, each of which hands
//! back a zeroizing zone or dataset key that the caller drops at the end of
//! its request.
//!
//! For extracts it also keeps the pseudonymization root and the ledger's
//! signing seed (manifests are signed with the ledger's key, so its one
//! published verifier key checks both). Neither leaves this type: callers
//! get a per-grant pseudonym key, a recipient fingerprint or a manifest
//! signer, each built for one request.

use std::sync::Arc;

use vault::desensitize::{grant_key, ManifestError, ManifestSigner, PseudonymKey};
use vault::ids::{DatasetId, ZoneId};
use vault::keys::{
    DatasetKey, KeyError, LedgerSigningSeed, MasterKey, PseudonymRoot, WrappedKey, ZoneKey,
    ZoneWrappingKey,
};

/// The zone wrapping key, for wrapping and unwrapping zone keys only.
pub struct KeyRing {
    zone_kek: Arc<ZoneWrappingKey>,
    catalog_root: Arc<vault::keys::CatalogRoot>,
    pseudonyms: Arc<PseudonymRoot>,
    signing_seed: Arc<LedgerSigningSeed>,
}

impl KeyRing {
    /// Derives the zone wrapping key from the unsealed master key, which
    /// the caller then drops.
    pub fn new(master: &MasterKey) -> KeyRing {
        KeyRing {
            zone_kek: Arc::new(master.zone_wrapping_key()),
            catalog_root: Arc::new(master.catalog_root()),
            pseudonyms: Arc::new(master.pseudonym_root()),
            signing_seed: Arc::new(master.ledger_signing_seed()),
        }
    }

    /// The root of the catalog's keys, for moving the catalog to a fresh
    /// key epoch after a cryptographic erase.
    pub fn catalog_root(&self) -> &vault::keys::CatalogRoot {
        &self.catalog_root
    }

    /// The pseudonymization key of grant `grant_id`.
    pub fn grant_key(&self, grant_id: &str) -> PseudonymKey {
        grant_key(&self.pseudonyms, grant_id)
    }

    /// The fingerprint of `recipient` in extracts under grant `grant_id`.
    pub fn recipient_fingerprint(&self, grant_id: &str, recipient: &str) -> String {
        vault::extract::recipient_fingerprint(&self.pseudonyms, grant_id, recipient)
    }

    /// A manifest signer named `name` (the ledger origin) with the
    /// ledger's signing key.
    pub fn manifest_signer(&self, name: &str) -> Result<ManifestSigner, ManifestError> {
        let seed = zeroize::Zeroizing::new(*self.signing_seed.ed25519_seed_bytes());
        ManifestSigner::new(name, &seed)
    }

    /// A fresh random zone key for `zone`, with its wrapped form to store.
    pub fn new_zone_key(&self, zone: &ZoneId) -> Result<(ZoneKey, WrappedKey), KeyError> {
        let key = ZoneKey::generate()?;
        let wrapped = key.wrap_with(&self.zone_kek, zone)?;
        Ok((key, wrapped))
    }

    /// Unwraps `zone`'s stored key.
    pub fn zone_key(&self, wrapped: &WrappedKey, zone: &ZoneId) -> Result<ZoneKey, KeyError> {
        ZoneKey::unwrap_with(wrapped, &self.zone_kek, zone)
    }

    /// Unwraps `dataset`'s stored key through its zone's stored key.
    pub fn dataset_key(
        &self,
        zone_wrapped: &WrappedKey,
        zone: &ZoneId,
        dataset_wrapped: &WrappedKey,
        dataset: &DatasetId,
    ) -> Result<DatasetKey, KeyError> {
        let zone_key = self.zone_key(zone_wrapped, zone)?;
        DatasetKey::unwrap(dataset_wrapped, &zone_key, dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn zone_and_dataset_keys_round_trip_and_bind_their_ids() {
        let ring = KeyRing::new(&ok(MasterKey::generate()));
        let z1: ZoneId = ok("z1".parse());
        let z2: ZoneId = ok("z2".parse());
        let d1: DatasetId = ok("d1".parse());
        let (zone_key, zone_wrapped) = ok(ring.new_zone_key(&z1));
        let ds_wrapped = ok(ok(DatasetKey::generate()).wrap(&zone_key, &d1));
        assert!(ring
            .dataset_key(&zone_wrapped, &z1, &ds_wrapped, &d1)
            .is_ok());
        assert!(ring.zone_key(&zone_wrapped, &z2).is_err());
        let d2: DatasetId = ok("d2".parse());
        assert!(ring
            .dataset_key(&zone_wrapped, &z1, &ds_wrapped, &d2)
            .is_err());
        let other = KeyRing::new(&ok(MasterKey::generate()));
        assert!(other.zone_key(&zone_wrapped, &z1).is_err());
    }
}
