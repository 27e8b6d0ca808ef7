//! The on-disk form of one custodian's share: Argon2id over the passphrase,
//! AES-256-GCM over the share, JSON with explicit versions.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::shamir::SECRET_LEN;
use super::{validate_counts, KeyCheck, RecoveryError, Share, SET_ID_LEN};

/// The `format` field of every share file.
pub const SHARE_FILE_FORMAT: &str = "zonevault-recovery-share";
/// The share file version this build writes and reads.
pub const SHARE_FILE_VERSION: u32 = 1;

const AAD_PREFIX: &[u8] = b"zonevault/v1/recovery-share";
const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;
const MAX_SHARE_FILE_BYTES: u64 = 64 * 1024;

/// Argon2id parameters for sealing a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl KdfParams {
    /// The production parameters: 64 MiB, 3 passes, 1 lane.
    pub const RECOMMENDED: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// Upper bounds accepted from a share file, so a crafted file cannot
    /// make opening exhaust memory or time: 2 GiB, 64 passes, 16 lanes.
    const MAX: Self = Self {
        m_kib: 2 * 1024 * 1024,
        t: 64,
        p: 16,
    };

    fn argon2(self) -> Result<argon2::Argon2<'static>, RecoveryError> {
        let unsupported = RecoveryError::UnsupportedKdfParams {
            m_kib: self.m_kib,
            t: self.t,
            p: self.p,
        };
        if self.m_kib > Self::MAX.m_kib || self.t > Self::MAX.t || self.p > Self::MAX.p {
            return Err(unsupported);
        }
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(SECRET_LEN))
            .map_err(|_| unsupported)?;
        Ok(argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        ))
    }

    fn derive(
        self,
        passphrase: &[u8],
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; SECRET_LEN]>, RecoveryError> {
        let mut key = Zeroizing::new([0u8; SECRET_LEN]);
        self.argon2()?
            .hash_password_into(passphrase, salt, key.as_mut())
            .map_err(|_| RecoveryError::UnsupportedKdfParams {
                m_kib: self.m_kib,
                t: self.t,
                p: self.p,
            })?;
        Ok(key)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// One custodian's sealed share, as stored on disk (JSON).
///
/// ```json
/// { "format": "zonevault-recovery-share", "version": 1,
///   "set_id": "<32 hex>", "index": 2, "n": 5, "k": 3,
///   "kdf": { "algorithm": "argon2id", "version": 19, "m_kib": 65536, "t": 3, "p": 1,
///            "salt": "<32 hex>" },
///   "cipher": "aes-256-gcm", "nonce": "<24 hex>", "ciphertext": "<96 hex>",
///   "key_check": "<32 hex>" }
/// ```
#[derive(Debug, Clone)]
pub struct ShareFile {
    set_id: [u8; SET_ID_LEN],
    index: u8,
    n: u8,
    k: u8,
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
    key_check: [u8; 16],
}

fn aad(set_id: &[u8; SET_ID_LEN], index: u8, n: u8, k: u8, key_check: &[u8; 16]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + SET_ID_LEN + 3 + 16);
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(set_id);
    aad.extend_from_slice(&[index, n, k]);
    aad.extend_from_slice(key_check);
    aad
}

fn aead_key(key: &[u8; SECRET_LEN]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key)
        .ok()
        .map(LessSafeKey::new)
}

impl ShareFile {
    /// Encrypt `share` under a key derived from `passphrase` with Argon2id
    /// (`params`; use [`KdfParams::RECOMMENDED`] outside tests).
    pub fn seal(
        share: &Share,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<Self, RecoveryError> {
        let index = share.index;
        if passphrase.is_empty() {
            return Err(RecoveryError::EmptyPassphrase { index });
        }
        let rng = SystemRandom::new();
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut salt).map_err(|_| RecoveryError::Rng)?;
        rng.fill(&mut nonce).map_err(|_| RecoveryError::Rng)?;
        let key = params.derive(passphrase, &salt)?;
        let aad = aad(&share.set_id, index, share.n, share.k, &share.key_check);
        // Room for the tag up front: sealing must not reallocate.
        let mut body = Vec::with_capacity(SECRET_LEN + TAG_LEN);
        body.extend_from_slice(&share.y);
        let sealed = aead_key(&key)
            .ok_or(RecoveryError::SealFailed { index })?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut body,
            );
        if sealed.is_err() {
            body.zeroize();
            return Err(RecoveryError::SealFailed { index });
        }
        Ok(Self {
            set_id: share.set_id,
            index,
            n: share.n,
            k: share.k,
            params,
            salt,
            nonce,
            ciphertext: body,
            key_check: share.key_check,
        })
    }

    /// Decrypt the share. A wrong passphrase, or any edit to the file's
    /// authenticated fields, is [`RecoveryError::WrongPassphrase`].
    pub fn open(&self, passphrase: &[u8]) -> Result<Share, RecoveryError> {
        let index = self.index;
        let key = self.params.derive(passphrase, &self.salt)?;
        let aad = aad(&self.set_id, index, self.n, self.k, &self.key_check);
        let mut body = Zeroizing::new(self.ciphertext.clone());
        let wrong = RecoveryError::WrongPassphrase { index };
        let nonce = Nonce::assume_unique_for_key(self.nonce);
        let plain = aead_key(&key)
            .ok_or(RecoveryError::WrongPassphrase { index })?
            .open_in_place(nonce, Aad::from(&aad), &mut body)
            .map_err(|_| wrong)?;
        let mut share = Share {
            set_id: self.set_id,
            index,
            n: self.n,
            k: self.k,
            key_check: self.key_check,
            y: [0u8; SECRET_LEN],
        };
        let y = plain
            .get(..SECRET_LEN)
            .ok_or(RecoveryError::WrongPassphrase { index })?;
        share.y.copy_from_slice(y);
        Ok(share)
    }

    /// This share's index, 1..=n.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// How many shares the set has.
    pub fn share_count(&self) -> u8 {
        self.n
    }

    /// How many shares recover the key.
    pub fn threshold(&self) -> u8 {
        self.k
    }

    /// The set id, hex; the same in every share of one split.
    pub fn set_id_hex(&self) -> String {
        hex::encode(self.set_id)
    }

    /// The key check to pass to [`combine`].
    pub fn key_check(&self) -> KeyCheck {
        KeyCheck(self.key_check)
    }

    /// The Argon2id parameters this share was sealed with.
    pub fn kdf_params(&self) -> KdfParams {
        self.params
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            format: SHARE_FILE_FORMAT.into(),
            version: SHARE_FILE_VERSION,
            set_id: hex::encode(self.set_id),
            index: self.index,
            n: self.n,
            k: self.k,
            kdf: WireKdf {
                algorithm: "argon2id".into(),
                version: 0x13,
                m_kib: self.params.m_kib,
                t: self.params.t,
                p: self.params.p,
                salt: hex::encode(self.salt),
            },
            cipher: "aes-256-gcm".into(),
            nonce: hex::encode(self.nonce),
            ciphertext: hex::encode(&self.ciphertext),
            key_check: hex::encode(self.key_check),
        };
        // A struct of strings and integers always serializes; fall back to
        // an empty object rather than panic.
        serde_json::to_string_pretty(&wire).unwrap_or_else(|_| String::from("{}"))
    }

    /// Parse and validate the JSON form.
    pub fn from_json(json: &str) -> Result<Self, RecoveryError> {
        let malformed = |reason: &str| RecoveryError::Malformed {
            reason: reason.into(),
        };
        let wire: Wire = serde_json::from_str(json).map_err(|e| RecoveryError::Malformed {
            reason: e.to_string(),
        })?;
        if wire.format != SHARE_FILE_FORMAT {
            return Err(malformed("not a zonevault recovery share"));
        }
        if wire.version != SHARE_FILE_VERSION {
            return Err(RecoveryError::Malformed {
                reason: format!("unsupported version {}", wire.version),
            });
        }
        if wire.kdf.algorithm != "argon2id" || wire.kdf.version != 0x13 {
            return Err(malformed("unsupported key derivation"));
        }
        if wire.cipher != "aes-256-gcm" {
            return Err(malformed("unsupported cipher"));
        }
        validate_counts(wire.n, wire.k).map_err(|_| malformed("invalid n or k"))?;
        if wire.index == 0 || wire.index > wire.n {
            return Err(malformed("index out of range"));
        }
        let ciphertext =
            hex::decode(&wire.ciphertext).map_err(|_| malformed("ciphertext is not hex"))?;
        if ciphertext.len() != SECRET_LEN + TAG_LEN {
            return Err(malformed("ciphertext has the wrong length"));
        }
        Ok(Self {
            set_id: hex_array(&wire.set_id).ok_or_else(|| malformed("bad set_id"))?,
            index: wire.index,
            n: wire.n,
            k: wire.k,
            params: KdfParams {
                m_kib: wire.kdf.m_kib,
                t: wire.kdf.t,
                p: wire.kdf.p,
            },
            salt: hex_array(&wire.kdf.salt).ok_or_else(|| malformed("bad salt"))?,
            nonce: hex_array(&wire.nonce).ok_or_else(|| malformed("bad nonce"))?,
            ciphertext,
            key_check: hex_array(&wire.key_check).ok_or_else(|| malformed("bad key_check"))?,
        })
    }

    /// Write to a new file at `path` with mode 0600, fsync it and its
    /// directory. Refuses to overwrite.
    pub fn write_new(&self, path: &Path) -> Result<(), RecoveryError> {
        let io_err = |source| RecoveryError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => RecoveryError::Exists {
                    path: path.to_owned(),
                },
                _ => io_err(e),
            })?;
        let mut json = self.to_json();
        json.push('\n');
        file.write_all(json.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| RecoveryError::Io {
                path: dir.to_owned(),
                source,
            })
    }

    /// Read and validate a share file.
    pub fn read(path: &Path) -> Result<Self, RecoveryError> {
        let io_err = |source| RecoveryError::Io {
            path: path.to_owned(),
            source,
        };
        let mut json = String::new();
        File::open(path)
            .map_err(io_err)?
            .take(MAX_SHARE_FILE_BYTES)
            .read_to_string(&mut json)
            .map_err(io_err)?;
        Self::from_json(&json).map_err(|e| match e {
            RecoveryError::Malformed { reason } => RecoveryError::MalformedFile {
                path: path.to_owned(),
                reason,
            },
            other => other,
        })
    }
}

fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = hex::decode(s).ok()?;
    bytes.try_into().ok()
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    format: String,
    version: u32,
    set_id: String,
    index: u8,
    n: u8,
    k: u8,
    kdf: WireKdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
    key_check: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireKdf {
    algorithm: String,
    version: u32,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MasterKey;
    use crate::recovery::{combine, split};

    /// Cheap Argon2id for tests only.
    const FAST: KdfParams = KdfParams {
        m_kib: 8,
        t: 1,
        p: 1,
    };

    fn master() -> MasterKey {
        MasterKey::generate().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ok<T>(r: Result<T, RecoveryError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn sealed_files_roundtrip_and_wrong_passphrase_refuses() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let m = master();
        let shares = ok(split(&m, 3, 2));
        let mut paths = Vec::new();
        for s in &shares {
            let file = ok(ShareFile::seal(
                s,
                format!("pass {}", s.index()).as_bytes(),
                FAST,
            ));
            let path = dir.path().join(format!("share-{}.json", s.index()));
            ok(file.write_new(&path));
            paths.push(path);
        }
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(&paths[0]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(
            ok(ShareFile::read(&paths[0])).write_new(&paths[0]),
            Err(RecoveryError::Exists { .. })
        ));

        let f1 = ok(ShareFile::read(&paths[0]));
        let f3 = ok(ShareFile::read(&paths[2]));
        assert_eq!(f1.set_id_hex(), f3.set_id_hex());
        assert_eq!((f1.share_count(), f1.threshold()), (3, 2));
        assert!(matches!(
            f3.open(b"pass 1"),
            Err(RecoveryError::WrongPassphrase { index: 3 })
        ));
        let opened = vec![ok(f1.open(b"pass 1")), ok(f3.open(b"pass 3"))];
        let got = ok(combine(&opened, &f1.key_check()));
        assert_eq!(got.secret_bytes(), m.secret_bytes());
    }

    #[test]
    fn edited_authenticated_fields_fail_to_open() {
        let m = master();
        let shares = ok(split(&m, 3, 2));
        let file = ok(ShareFile::seal(&shares[0], b"pw", FAST));
        let mut moved = file.clone();
        moved.index = 2;
        assert!(matches!(
            moved.open(b"pw"),
            Err(RecoveryError::WrongPassphrase { index: 2 })
        ));
        let mut rethresholded = file.clone();
        rethresholded.k = 3;
        assert!(rethresholded.open(b"pw").is_err());
        let mut rechecked = file;
        rechecked.key_check[0] ^= 1;
        assert!(rechecked.open(b"pw").is_err());
        assert!(matches!(
            ShareFile::seal(&shares[0], b"", FAST),
            Err(RecoveryError::EmptyPassphrase { index: 1 })
        ));
    }

    #[test]
    fn json_is_validated() {
        let m = master();
        let shares = ok(split(&m, 2, 2));
        let file = ok(ShareFile::seal(&shares[1], b"pw", FAST));
        let json = file.to_json();
        let back = ok(ShareFile::from_json(&json));
        assert_eq!(back.to_json(), json);
        assert!(json.contains("\"m_kib\": 8"));
        for (from, to) in [
            ("\"version\": 1", "\"version\": 2"),
            ("\"index\": 2", "\"index\": 3"),
            ("\"index\": 2", "\"index\": 0"),
            ("\"cipher\": \"aes-256-gcm\"", "\"cipher\": \"none\""),
            ("\"m_kib\": 8", "\"m_kib\": 4294967295"),
        ] {
            let edited = json.replace(from, to);
            assert_ne!(edited, json);
            let parsed = ShareFile::from_json(&edited).and_then(|f| f.open(b"pw"));
            assert!(parsed.is_err(), "{from} -> {to}");
        }
        assert!(ShareFile::from_json("{}").is_err());
    }
}
