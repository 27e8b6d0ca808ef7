//! The keyed function behind pseudonym tokens and fingerprint choices:
//! HMAC-SHA256 (RFC 2104) with its key schedule done once per key, so each
//! value costs a copy of the prepared state and two SHA-256 compressions.
//! The output is that of any HMAC-SHA256 (a test checks it against ring's).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A prepared HMAC-SHA256 key. No `Debug`; the state derived from the key
/// is not zeroized (neither is ring's), so drop it when the work ends.
#[derive(Clone)]
pub(super) struct Prf(Hmac<Sha256>);

impl Prf {
    /// The prepared key.
    pub(super) fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length: longer ones are hashed first.
        match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => Prf(mac),
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    /// A fresh computation under this key: `update`, then `finalize`.
    pub(super) fn start(&self) -> Hmac<Sha256> {
        self.0.clone()
    }

    /// The tag of `parts`, concatenated.
    pub(super) fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.start();
        parts.iter().for_each(|p| mac.update(p));
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::hmac as ring_hmac;

    #[test]
    fn same_tags_as_ring_for_every_key_and_message_length() {
        for key_len in [0usize, 16, 32, 64, 65, 100] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
            let prf = Prf::new(&key);
            let reference = ring_hmac::Key::new(ring_hmac::HMAC_SHA256, &key);
            for msg_len in [0usize, 1, 55, 56, 63, 64, 65, 200] {
                let msg: Vec<u8> = (0..msg_len).map(|i| (i * 13 + 5) as u8).collect();
                let (a, b) = msg.split_at(msg_len / 3);
                let ours = prf.tag(&[a, b]);
                let theirs = ring_hmac::sign(&reference, &msg);
                assert_eq!(
                    ours.as_slice(),
                    theirs.as_ref(),
                    "key {key_len}, msg {msg_len}"
                );
            }
        }
    }
}
