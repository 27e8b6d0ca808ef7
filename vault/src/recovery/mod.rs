//! Recovery: the master key split into n Shamir shares with threshold k,
//! each sealed for one custodian under a key derived from that custodian's
//! passphrase with Argon2id.
//!
//! A share file is JSON (see [`ShareFile`]) holding the share set id, the
//! share's index, n and k, the Argon2id parameters and salt, the AES-256-GCM
//! nonce and ciphertext of the share, and a key check value
//! (HMAC-SHA256(master, "zonevault recovery check"), first 16 bytes). The
//! AAD binds set id, index, n, k and the key check, so none of them can be
//! edited without the share failing to open. Combining proves its result is
//! the real master key against the key check before returning it.

mod shamir;
mod share_file;

use std::io;
use std::path::PathBuf;

use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::keys::MasterKey;
use shamir::SECRET_LEN;

pub use share_file::{KdfParams, ShareFile, SHARE_FILE_FORMAT, SHARE_FILE_VERSION};

const KEY_CHECK_MESSAGE: &[u8] = b"zonevault recovery check";
const SET_ID_LEN: usize = 16;

/// Errors of splitting, sealing, opening and combining shares. None carries
/// share or key bytes.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// n and k are out of range.
    #[error("invalid share counts n = {n}, k = {k}: need 2 <= k <= n <= 255, or n = k = 1")]
    InvalidThreshold {
        /// Number of shares.
        n: u8,
        /// Threshold.
        k: u8,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Rng,
    /// A share cannot be sealed under an empty passphrase.
    #[error("the passphrase for share {index} is empty")]
    EmptyPassphrase {
        /// The share index.
        index: u8,
    },
    /// Argon2id refused the parameters, or they exceed what this build
    /// accepts from a file.
    #[error("unsupported Argon2id parameters m = {m_kib} KiB, t = {t}, p = {p}")]
    UnsupportedKdfParams {
        /// Memory in KiB.
        m_kib: u32,
        /// Iterations.
        t: u32,
        /// Parallelism.
        p: u32,
    },
    /// AES-GCM sealing failed (not expected).
    #[error("encrypting share {index} failed")]
    SealFailed {
        /// The share index.
        index: u8,
    },
    /// The passphrase is wrong, or the file was altered.
    #[error("wrong passphrase for share {index} (or the share file was altered)")]
    WrongPassphrase {
        /// The share index.
        index: u8,
    },
    /// Fewer shares than the threshold.
    #[error("{have} shares given, {need} needed")]
    NotEnoughShares {
        /// Shares given.
        have: usize,
        /// The threshold.
        need: u8,
    },
    /// The same share was given twice.
    #[error("share {index} was given more than once")]
    DuplicateIndex {
        /// The repeated index.
        index: u8,
    },
    /// The shares come from different splits.
    #[error("the shares come from different recovery sets")]
    MixedSets,
    /// The shares combined to something that is not the master key.
    #[error("the combined key does not match the key check")]
    CombinedKeyMismatch,
    /// The share file exists (on write).
    #[error("{}: share file already exists", path.display())]
    Exists {
        /// The share file.
        path: PathBuf,
    },
    /// Reading or writing a share file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The share file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The share file is not a valid version-1 share file.
    #[error("malformed share file: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// A share file at `path` is malformed.
    #[error("{}: malformed share file: {reason}", path.display())]
    MalformedFile {
        /// The share file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The first 16 bytes of HMAC-SHA256(master, "zonevault recovery check").
/// Proves a combined key is the real master key without revealing it.
#[derive(Clone, Copy)]
pub struct KeyCheck([u8; 16]);

impl KeyCheck {
    /// The key check of `master`.
    pub fn of(master: &MasterKey) -> Self {
        let mac = master.hmac_sha256(KEY_CHECK_MESSAGE);
        let mut check = [0u8; 16];
        check.copy_from_slice(&mac[..16]);
        Self(check)
    }

    /// Whether `master` has this key check (constant time).
    pub fn matches(&self, master: &MasterKey) -> bool {
        self.0.ct_eq(&Self::of(master).0).into()
    }

    /// Lowercase hex, as stored in share files.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for KeyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCheck({})", self.to_hex())
    }
}

/// One custodian's share of the master key, in clear. Zeroizes on drop;
/// no `Debug`, `Clone` or `Serialize`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Share {
    set_id: [u8; SET_ID_LEN],
    index: u8,
    n: u8,
    k: u8,
    key_check: [u8; 16],
    y: [u8; SECRET_LEN],
}

impl Share {
    /// This share's x value, 1..=n.
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

    /// The key check of the master key this share belongs to.
    pub fn key_check(&self) -> KeyCheck {
        KeyCheck(self.key_check)
    }
}

fn validate_counts(n: u8, k: u8) -> Result<(), RecoveryError> {
    let ok = (n == 1 && k == 1) || (2 <= k && k <= n);
    if ok {
        Ok(())
    } else {
        Err(RecoveryError::InvalidThreshold { n, k })
    }
}

/// Split `master` into `n` shares, any `k` of which recover it.
/// Requires 2 ≤ k ≤ n ≤ 255, or n = k = 1. All shares get one fresh random
/// set id.
pub fn split(master: &MasterKey, n: u8, k: u8) -> Result<Vec<Share>, RecoveryError> {
    validate_counts(n, k)?;
    let mut set_id = [0u8; SET_ID_LEN];
    SystemRandom::new()
        .fill(&mut set_id)
        .map_err(|_| RecoveryError::Rng)?;
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    secret.copy_from_slice(master.secret_bytes());
    let key_check = KeyCheck::of(master).0;
    let ys = shamir::split(&secret, n, k).map_err(|_| RecoveryError::Rng)?;
    Ok((1..=n)
        .zip(ys.iter())
        .map(|(index, y)| Share {
            set_id,
            index,
            n,
            k,
            key_check,
            y: **y,
        })
        .collect())
}

/// Recover the master key from at least k shares of one set, and prove it
/// against `key_check` (from any of the set's share files).
pub fn combine(shares: &[Share], key_check: &KeyCheck) -> Result<MasterKey, RecoveryError> {
    let first = shares
        .first()
        .ok_or(RecoveryError::NotEnoughShares { have: 0, need: 1 })?;
    let mut seen = [false; 256];
    for s in shares {
        let same_set = s.set_id == first.set_id
            && s.n == first.n
            && s.k == first.k
            && bool::from(s.key_check.ct_eq(&first.key_check));
        if !same_set {
            return Err(RecoveryError::MixedSets);
        }
        let slot = &mut seen[usize::from(s.index)];
        if *slot {
            return Err(RecoveryError::DuplicateIndex { index: s.index });
        }
        *slot = true;
    }
    if shares.len() < usize::from(first.k) {
        return Err(RecoveryError::NotEnoughShares {
            have: shares.len(),
            need: first.k,
        });
    }
    let points: Vec<(u8, &[u8; SECRET_LEN])> = shares.iter().map(|s| (s.index, &s.y)).collect();
    let secret = shamir::interpolate_at_zero(&points);
    let master =
        MasterKey::from_bytes(secret.as_ref()).map_err(|_| RecoveryError::CombinedKeyMismatch)?;
    if !key_check.matches(&master) {
        return Err(RecoveryError::CombinedKeyMismatch);
    }
    Ok(master)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::generate().unwrap_or_else(|e| panic!("{e}"))
    }

    fn ok<T>(r: Result<T, RecoveryError>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    fn subsets(n: usize, size: usize) -> Vec<Vec<usize>> {
        (0u32..1 << n)
            .filter(|m| m.count_ones() as usize == size)
            .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
            .collect()
    }

    fn pick(shares: &[Share], which: &[usize]) -> Vec<Share> {
        which
            .iter()
            .map(|&i| {
                let s = &shares[i];
                Share {
                    set_id: s.set_id,
                    index: s.index,
                    n: s.n,
                    k: s.k,
                    key_check: s.key_check,
                    y: s.y,
                }
            })
            .collect()
    }

    #[test]
    fn every_k_subset_of_five_recovers_and_k_minus_one_refuses() {
        let m = master();
        let shares = ok(split(&m, 5, 3));
        let check = KeyCheck::of(&m);
        assert_eq!(shares.len(), 5);
        assert_eq!(
            shares.iter().map(Share::index).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        for size in 3..=5 {
            for which in subsets(5, size) {
                let got = ok(combine(&pick(&shares, &which), &check));
                assert_eq!(got.secret_bytes(), m.secret_bytes(), "{which:?}");
            }
        }
        for which in subsets(5, 2) {
            assert!(matches!(
                combine(&pick(&shares, &which), &check),
                Err(RecoveryError::NotEnoughShares { have: 2, need: 3 })
            ));
        }
    }

    #[test]
    fn invalid_counts_refused() {
        let m = master();
        for (n, k) in [(0, 0), (3, 0), (3, 1), (3, 4), (1, 2), (255, 1)] {
            assert!(
                matches!(split(&m, n, k), Err(RecoveryError::InvalidThreshold { .. })),
                "n={n} k={k}"
            );
        }
        assert_eq!(ok(split(&m, 1, 1)).len(), 1);
        assert_eq!(ok(split(&m, 255, 255)).len(), 255);
    }

    #[test]
    fn duplicates_mixed_sets_and_wrong_check_refused() {
        let m = master();
        let a = ok(split(&m, 3, 2));
        let b = ok(split(&m, 3, 2));
        let check = KeyCheck::of(&m);
        assert!(matches!(
            combine(&pick(&a, &[0, 0]), &check),
            Err(RecoveryError::DuplicateIndex { index: 1 })
        ));
        let mut mixed = pick(&a, &[0]);
        mixed.extend(pick(&b, &[1]));
        assert!(matches!(
            combine(&mixed, &check),
            Err(RecoveryError::MixedSets)
        ));
        assert!(matches!(
            combine(&pick(&a, &[0, 1]), &KeyCheck::of(&master())),
            Err(RecoveryError::CombinedKeyMismatch)
        ));
        // A corrupted share interpolates to a different key, caught by the check.
        let mut bad = pick(&a, &[0, 2]);
        bad[1].y[0] ^= 1;
        assert!(matches!(
            combine(&bad, &check),
            Err(RecoveryError::CombinedKeyMismatch)
        ));
        assert!(matches!(
            combine(&[], &check),
            Err(RecoveryError::NotEnoughShares { have: 0, .. })
        ));
    }
}
