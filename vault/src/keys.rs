//! The key hierarchy: the master key, the keys derived from it, and the
//! random zone and dataset keys that are stored only wrapped.
//!
//! ```text
//! MasterKey (32 bytes, OS CSPRNG; sealed in the TPM, split for recovery)
//!  ├─ HKDF-SHA256 ─ CatalogKey, LedgerHmacKey, LedgerSigningSeed, PseudonymRoot
//!  └─ HKDF-SHA256 ─ zone wrapping key ─ AES-256-GCM ─ ZoneKey (random)
//!                                                     └─ AES-256-GCM ─ DatasetKey (random)
//! ```
//!
//! Derivation is HKDF-SHA256 (RFC 5869) with the master key as input keying
//! material, an empty salt, the purpose's label (see [`KeyPurpose::label`])
//! as info, and 32 bytes of output. The zone keys are wrapped under a key
//! derived for that purpose rather than under the master key itself, so the
//! master key is only ever used as HKDF and HMAC input.
//!
//! Every secret here zeroizes on drop and implements neither `Debug`,
//! `Clone`, `Serialize` nor `PartialEq`; its bytes are reachable only through
//! one narrowly named method per type.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::ids::{DatasetId, ZoneId};

/// Length of every symmetric key in the hierarchy, in bytes.
pub const KEY_LEN: usize = 32;

/// Version byte that starts every [`WrappedKey`].
pub const WRAPPED_KEY_VERSION: u8 = 1;

const TAG_LEN: usize = 16;

/// Length of a version-1 [`WrappedKey`]: version ‖ nonce ‖ ciphertext ‖ tag.
pub const WRAPPED_KEY_LEN: usize = 1 + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Errors of key handling. None of them carries key material, and
/// [`KeyError::UnwrapFailed`] deliberately says nothing about why.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key bytes handed in were not exactly [`KEY_LEN`] long.
    #[error("a key must be exactly {KEY_LEN} bytes, got {len}")]
    WrongLength {
        /// Length of the rejected input.
        len: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// AES-GCM sealing failed (not expected with valid keys).
    #[error("wrapping the key failed")]
    WrapFailed,
    /// The wrapped key is malformed, was wrapped under another key, or
    /// belongs to another zone or dataset.
    #[error("the wrapped key could not be unwrapped")]
    UnwrapFailed,
}

/// Fill a fresh 32-byte secret from the OS CSPRNG.
fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| KeyError::Rng)?;
    Ok(bytes)
}

fn key_from_slice(bytes: &[u8]) -> Result<[u8; KEY_LEN], KeyError> {
    bytes
        .try_into()
        .map_err(|_| KeyError::WrongLength { len: bytes.len() })
}

/// What a derived key is for. Each purpose has its own HKDF label, so keys
/// for different purposes are independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// The SQLCipher key of `catalog.db`.
    Catalog,
    /// The ledger's HMAC key for sensitive request values.
    LedgerHmac,
    /// The seed of the ledger's Ed25519 checkpoint-signing key.
    LedgerSigning,
    /// The root from which per-grant pseudonymization keys are derived.
    Pseudonymization,
    /// The AES-256-GCM key that wraps zone keys.
    ZoneWrapping,
}

impl KeyPurpose {
    /// The HKDF info string for this purpose. Changing one is a format break.
    pub fn label(self) -> &'static str {
        match self {
            KeyPurpose::Catalog => "zonevault/v1/catalog",
            KeyPurpose::LedgerHmac => "zonevault/v1/ledger-hmac",
            KeyPurpose::LedgerSigning => "zonevault/v1/ledger-signing",
            KeyPurpose::Pseudonymization => "zonevault/v1/pseudonymization",
            KeyPurpose::ZoneWrapping => "zonevault/v1/zone-wrapping",
        }
    }
}

/// HKDF-SHA256 producing exactly one hash length of output: with L = 32,
/// HKDF-Expand is the single block T(1) = HMAC(PRK, info ‖ 0x01).
fn hkdf_sha256_32(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
    let prk_key = hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref());
    let mut ctx = hmac::Context::with_key(&prk_key);
    ctx.update(info);
    ctx.update(&[0x01]);
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// The root of the hierarchy. Generated once at init, sealed in the TPM and
/// split into recovery shares; never written to disk in clear.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// A new master key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(*random_key()?))
    }

    /// A master key from its raw bytes (as unsealed from the TPM or combined
    /// from recovery shares). The input must be exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        Ok(Self(key_from_slice(bytes)?))
    }

    /// The raw key bytes. Only for handing to the TPM sealer (and the
    /// recovery splitter in this crate); nothing else needs them.
    pub fn secret_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Derive the 32-byte key for `purpose` with HKDF-SHA256.
    fn derive(&self, purpose: KeyPurpose) -> Zeroizing<[u8; KEY_LEN]> {
        hkdf_sha256_32(&[], &self.0, purpose.label().as_bytes())
    }

    /// The SQLCipher key of the catalog of an appliance without a catalog
    /// epoch (see [`CatalogRoot`]); equal to `catalog_root().key(None)`.
    pub fn catalog_key(&self) -> CatalogKey {
        CatalogKey(*self.derive(KeyPurpose::Catalog))
    }

    /// The root of the catalog's keys.
    pub fn catalog_root(&self) -> CatalogRoot {
        CatalogRoot(*self.derive(KeyPurpose::Catalog))
    }

    /// The ledger's HMAC key for sensitive request values.
    pub fn ledger_hmac_key(&self) -> LedgerHmacKey {
        LedgerHmacKey(*self.derive(KeyPurpose::LedgerHmac))
    }

    /// The seed of the ledger's Ed25519 checkpoint-signing key.
    pub fn ledger_signing_seed(&self) -> LedgerSigningSeed {
        LedgerSigningSeed(*self.derive(KeyPurpose::LedgerSigning))
    }

    /// The key that wraps zone keys. A server holds this, not the master
    /// key, for the zone operations it performs after startup.
    pub fn zone_wrapping_key(&self) -> ZoneWrappingKey {
        ZoneWrappingKey(*self.derive(KeyPurpose::ZoneWrapping))
    }

    /// The pseudonymization root.
    pub fn pseudonym_root(&self) -> PseudonymRoot {
        PseudonymRoot(*self.derive(KeyPurpose::Pseudonymization))
    }

    /// HMAC-SHA256 under the master key itself; used by recovery for its
    /// key check value.
    pub(crate) fn hmac_sha256(&self, message: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &self.0), message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

macro_rules! derived_key {
    ($(#[$doc:meta])* $name:ident, $(#[$mdoc:meta])* $method:ident) => {
        $(#[$doc])*
        #[derive(Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            $(#[$mdoc])*
            pub fn $method(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }
    };
}

derived_key!(
    /// The SQLCipher key of `catalog.db`, derived from the master key.
    CatalogKey,
    /// The raw 32 bytes for `PRAGMA key = "x'…'"`.
    sqlcipher_key_bytes
);
derived_key!(
    /// The ledger's HMAC-SHA256 key for sensitive request values.
    LedgerHmacKey,
    /// The raw bytes, for building an HMAC key.
    hmac_key_bytes
);
derived_key!(
    /// The 32-byte Ed25519 seed of the ledger's checkpoint-signing key.
    LedgerSigningSeed,
    /// The raw seed, for `Ed25519KeyPair::from_seed_unchecked`.
    ed25519_seed_bytes
);
/// The key-encryption key of zone keys, derived from the master key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ZoneWrappingKey([u8; KEY_LEN]);

/// The root of the catalog's keys. The catalog is keyed with
/// HKDF-SHA256(salt = the catalog *epoch*, a random 32-byte value kept in
/// the data directory, ikm = this root, info = `zonevault/v1/catalog-epoch`).
/// Every cryptographic erase moves the catalog to a fresh epoch and
/// destroys the old one, so a copy of the catalog taken before the erase
/// (which still holds the destroyed wrapped keys) opens with no key the
/// appliance can still derive. `key(None)` is the epoch-less key of
/// catalogs created before epochs existed (= [`MasterKey::catalog_key`]).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CatalogRoot([u8; KEY_LEN]);

impl CatalogRoot {
    /// The catalog key of `epoch` (`None`: the epoch-less key).
    pub fn key(&self, epoch: Option<&[u8; KEY_LEN]>) -> CatalogKey {
        match epoch {
            None => CatalogKey(self.0),
            Some(salt) => CatalogKey(*hkdf_sha256_32(
                salt,
                &self.0,
                b"zonevault/v1/catalog-epoch",
            )),
        }
    }
}

derived_key!(
    /// The root from which pseudonymization keys are derived.
    PseudonymRoot,
    /// The raw bytes, for deriving per-grant pseudonymization keys.
    derivation_key_bytes
);

/// A key wrapped with AES-256-GCM: version byte ‖ 12-byte random nonce ‖
/// ciphertext ‖ 16-byte tag. The AAD binds the kind and id of what the key
/// protects (`zone:<id>`, `dataset:<id>`), so a wrapped key copied to
/// another row does not unwrap. Not secret, so it may be stored and cloned.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Parse stored bytes. Only checks the version and length; whether the
    /// key is genuine is decided by unwrapping.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != WRAPPED_KEY_LEN || bytes[0] != WRAPPED_KEY_VERSION {
            return Err(KeyError::UnwrapFailed);
        }
        Ok(Self(bytes.to_vec()))
    }

    /// The stored form.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WrappedKey").field(&self.0.len()).finish()
    }
}

fn aead_key(key: &[u8; KEY_LEN]) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::WrapFailed)
}

fn wrap(kek: &[u8; KEY_LEN], aad: &str, key: &[u8; KEY_LEN]) -> Result<WrappedKey, KeyError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| KeyError::Rng)?;
    // Capacity for the tag up front, so sealing never reallocates and
    // leaves a plaintext copy behind in a freed buffer.
    let mut body = Vec::with_capacity(KEY_LEN + TAG_LEN);
    body.extend_from_slice(key);
    let sealed = aead_key(kek)?.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad.as_bytes()),
        &mut body,
    );
    if sealed.is_err() {
        body.zeroize();
        return Err(KeyError::WrapFailed);
    }
    let mut out = Vec::with_capacity(WRAPPED_KEY_LEN);
    out.push(WRAPPED_KEY_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(WrappedKey(out))
}

fn unwrap(
    kek: &[u8; KEY_LEN],
    aad: &str,
    wrapped: &WrappedKey,
) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let bytes = wrapped.as_bytes();
    if bytes.len() != WRAPPED_KEY_LEN || bytes[0] != WRAPPED_KEY_VERSION {
        return Err(KeyError::UnwrapFailed);
    }
    let nonce = Nonce::try_assume_unique_for_key(&bytes[1..1 + NONCE_LEN])
        .map_err(|_| KeyError::UnwrapFailed)?;
    let mut body = Zeroizing::new(bytes[1 + NONCE_LEN..].to_vec());
    let plain = aead_key(kek)
        .map_err(|_| KeyError::UnwrapFailed)?
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
        .map_err(|_| KeyError::UnwrapFailed)?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(plain.get(..KEY_LEN).ok_or(KeyError::UnwrapFailed)?);
    Ok(key)
}

fn zone_aad(id: &ZoneId) -> String {
    format!("zone:{id}")
}

fn dataset_aad(id: &DatasetId) -> String {
    format!("dataset:{id}")
}

/// A zone's key: random, stored only wrapped under the master key's zone
/// wrapping key. Destroying the wrapped form erases every dataset key in
/// the zone.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ZoneKey([u8; KEY_LEN]);

impl ZoneKey {
    /// A new random zone key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(*random_key()?))
    }

    /// Wrap this key for storage in zone `id`'s catalog row.
    pub fn wrap(&self, master: &MasterKey, id: &ZoneId) -> Result<WrappedKey, KeyError> {
        self.wrap_with(&master.zone_wrapping_key(), id)
    }

    /// [`ZoneKey::wrap`] with the zone wrapping key already derived.
    pub fn wrap_with(&self, kek: &ZoneWrappingKey, id: &ZoneId) -> Result<WrappedKey, KeyError> {
        wrap(&kek.0, &zone_aad(id), &self.0)
    }

    /// Unwrap zone `id`'s key. Any failure is [`KeyError::UnwrapFailed`].
    pub fn unwrap(wrapped: &WrappedKey, master: &MasterKey, id: &ZoneId) -> Result<Self, KeyError> {
        Self::unwrap_with(wrapped, &master.zone_wrapping_key(), id)
    }

    /// [`ZoneKey::unwrap`] with the zone wrapping key already derived.
    pub fn unwrap_with(
        wrapped: &WrappedKey,
        kek: &ZoneWrappingKey,
        id: &ZoneId,
    ) -> Result<Self, KeyError> {
        Ok(Self(*unwrap(&kek.0, &zone_aad(id), wrapped)?))
    }
}

/// A dataset's key: random, keys the dataset's SQLCipher file, stored only
/// wrapped under its zone's key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct DatasetKey([u8; KEY_LEN]);

impl DatasetKey {
    /// A new random dataset key.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self(*random_key()?))
    }

    /// Wrap this key under its zone's key for dataset `id`'s catalog row.
    pub fn wrap(&self, zone: &ZoneKey, id: &DatasetId) -> Result<WrappedKey, KeyError> {
        wrap(&zone.0, &dataset_aad(id), &self.0)
    }

    /// Unwrap dataset `id`'s key. Any failure is [`KeyError::UnwrapFailed`].
    pub fn unwrap(wrapped: &WrappedKey, zone: &ZoneKey, id: &DatasetId) -> Result<Self, KeyError> {
        Ok(Self(*unwrap(&zone.0, &dataset_aad(id), wrapped)?))
    }

    /// The raw 32 bytes for `PRAGMA key = "x'…'"` on the dataset's file.
    pub fn sqlcipher_key_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zid(s: &str) -> ZoneId {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn did(s: &str) -> DatasetId {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn master() -> MasterKey {
        MasterKey::generate().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let okm = hkdf_sha256_32(&salt, &ikm, &info);
        assert_eq!(
            hex::encode(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
        );
    }

    #[test]
    fn hkdf_agrees_with_ring() {
        struct Len32;
        impl ring::hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let m = master();
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(m.secret_bytes());
        let info = [KeyPurpose::Catalog.label().as_bytes()];
        let mut expected = [0u8; 32];
        prk.expand(&info, Len32)
            .and_then(|okm| okm.fill(&mut expected))
            .unwrap_or_else(|_| panic!("ring hkdf"));
        assert_eq!(m.catalog_key().sqlcipher_key_bytes(), &expected);
    }

    #[test]
    fn labels_give_distinct_deterministic_keys() {
        let m = master();
        let keys = [
            *m.catalog_key().sqlcipher_key_bytes(),
            *m.ledger_hmac_key().hmac_key_bytes(),
            *m.ledger_signing_seed().ed25519_seed_bytes(),
            *m.pseudonym_root().derivation_key_bytes(),
            *m.derive(KeyPurpose::ZoneWrapping),
            key_from_slice(m.secret_bytes()).unwrap_or_else(|e| panic!("{e}")),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let again = MasterKey::from_bytes(m.secret_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again.catalog_key().sqlcipher_key_bytes(),
            m.catalog_key().sqlcipher_key_bytes()
        );
        assert_ne!(
            master().catalog_key().sqlcipher_key_bytes(),
            m.catalog_key().sqlcipher_key_bytes()
        );
    }

    #[test]
    fn from_bytes_requires_32_bytes() {
        assert!(matches!(
            MasterKey::from_bytes(&[0u8; 31]),
            Err(KeyError::WrongLength { len: 31 })
        ));
        assert!(MasterKey::from_bytes(&[0u8; 33]).is_err());
        assert!(MasterKey::from_bytes(&[7u8; 32]).is_ok());
    }

    #[test]
    fn zone_and_dataset_keys_roundtrip() {
        let m = master();
        let z = ZoneKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let wz = z.wrap(&m, &zid("health")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wz.as_bytes().len(), WRAPPED_KEY_LEN);
        assert_eq!(wz.as_bytes()[0], WRAPPED_KEY_VERSION);
        let z2 = ZoneKey::unwrap(&wz, &m, &zid("health")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(z.0, z2.0);

        let d = DatasetKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let wd = d.wrap(&z, &did("ds1")).unwrap_or_else(|e| panic!("{e}"));
        let stored = WrappedKey::from_bytes(wd.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let d2 = DatasetKey::unwrap(&stored, &z2, &did("ds1")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.sqlcipher_key_bytes(), d2.sqlcipher_key_bytes());
        // Fresh nonce each time.
        let wd2 = d.wrap(&z, &did("ds1")).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(wd.as_bytes(), wd2.as_bytes());
    }

    #[test]
    fn unwrap_fails_for_other_id_kind_key_or_tampering() {
        let m = master();
        let z = ZoneKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let wz = z.wrap(&m, &zid("a")).unwrap_or_else(|e| panic!("{e}"));
        let fails = |r: Result<ZoneKey, KeyError>| matches!(r, Err(KeyError::UnwrapFailed));
        assert!(fails(ZoneKey::unwrap(&wz, &m, &zid("b"))));
        assert!(fails(ZoneKey::unwrap(&wz, &master(), &zid("a"))));
        let mut bad = wz.as_bytes().to_vec();
        bad[20] ^= 1;
        assert!(fails(ZoneKey::unwrap(&WrappedKey(bad), &m, &zid("a"))));

        // A dataset key wrapped for dataset "a" does not unwrap as "b",
        // and a zone-wrapped blob is not a dataset-wrapped blob.
        let d = DatasetKey::generate().unwrap_or_else(|e| panic!("{e}"));
        let wd = d.wrap(&z, &did("a")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            DatasetKey::unwrap(&wd, &z, &did("b")),
            Err(KeyError::UnwrapFailed)
        ));
        let other_zone = ZoneKey::generate().unwrap_or_else(|e| panic!("{e}"));
        assert!(DatasetKey::unwrap(&wd, &other_zone, &did("a")).is_err());
        let kek = m.derive(KeyPurpose::ZoneWrapping);
        let as_dataset = wrap(&kek, "dataset:a", &z.0).unwrap_or_else(|e| panic!("{e}"));
        assert!(fails(ZoneKey::unwrap(&as_dataset, &m, &zid("a"))));

        assert!(WrappedKey::from_bytes(&wz.as_bytes()[1..]).is_err());
        let mut v2 = wz.as_bytes().to_vec();
        v2[0] = 2;
        assert!(WrappedKey::from_bytes(&v2).is_err());
    }
}
