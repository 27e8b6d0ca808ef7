//! A minimal C2SP signed-note verifier for the ledger checkpoint that a
//! quote binds (Ed25519 only), so a regulator's verifier needs neither the
//! vault crate nor its SQLCipher build. The formats are those of
//! `vault::ledger::checkpoint`; the e2e tests check both agree.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

/// A checkpoint whose note signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The log origin (also the key name).
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: [u8; 32],
}

/// Verifies `note` against the verifier key string
/// `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>`.
pub fn verify_checkpoint(note: &str, vkey: &str) -> Result<SignedCheckpoint, &'static str> {
    let (name, id, public) = parse_key(vkey)?;
    let (body, sigs) = note
        .split_once("\n\n")
        .ok_or("the note has no signature block")?;
    let body = format!("{body}\n");
    let prefix = format!("\u{2014} {name} ");
    let mut verified = false;
    for line in sigs.lines() {
        let Some(b64) = line.strip_prefix(&prefix) else {
            continue;
        };
        let blob = B64.decode(b64).map_err(|_| "a signature is not base64")?;
        if blob.len() != 68 || blob[..4] != id {
            continue;
        }
        UnparsedPublicKey::new(&ED25519, &public)
            .verify(body.as_bytes(), &blob[4..])
            .map_err(|_| "the checkpoint signature does not verify")?;
        verified = true;
    }
    if !verified {
        return Err("the checkpoint carries no signature by the checkpoint key");
    }
    parse_body(&body, &name)
}

fn parse_key(vkey: &str) -> Result<(String, [u8; 4], [u8; 32]), &'static str> {
    let mut parts = vkey.trim_end().splitn(3, '+');
    let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err("the checkpoint key is not name+id+key");
    };
    let mut id = [0u8; 4];
    hex::decode_to_slice(id_hex, &mut id)
        .map_err(|_| "the checkpoint key id is not 8 hex digits")?;
    let key = B64
        .decode(key_b64)
        .map_err(|_| "the checkpoint key is not base64")?;
    let Some((&0x01, public)) = key.split_first() else {
        return Err("the checkpoint key is not Ed25519");
    };
    let public: [u8; 32] = public
        .try_into()
        .map_err(|_| "the checkpoint key is not 32 bytes")?;
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', 0x01]);
    h.update(public);
    if h.finalize()[..4] != id {
        return Err("the checkpoint key id does not match the key");
    }
    Ok((name.to_owned(), id, public))
}

fn parse_body(body: &str, name: &str) -> Result<SignedCheckpoint, &'static str> {
    let lines: Vec<&str> = body.trim_end_matches('\n').split('\n').collect();
    let [origin, size, root] = lines[..] else {
        return Err("the checkpoint body is not three lines");
    };
    if origin != name {
        return Err("the checkpoint origin is not the key name");
    }
    let size = size
        .parse()
        .map_err(|_| "the checkpoint size is not a number")?;
    let root: [u8; 32] = B64
        .decode(root)
        .ok()
        .and_then(|r| r.try_into().ok())
        .ok_or("the checkpoint root is not 32 bytes of base64")?;
    Ok(SignedCheckpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    /// A signed checkpoint note and its verifier key, as the vault writes them.
    pub(crate) fn signed(size: u64) -> (String, String) {
        let pair = Ed25519KeyPair::from_seed_unchecked(&[3; 32]).unwrap();
        let name = "zonevault/test";
        let public = pair.public_key().as_ref();
        let mut h = Sha256::new();
        h.update(name.as_bytes());
        h.update([b'\n', 0x01]);
        h.update(public);
        let id = &h.finalize()[..4];
        let mut key = vec![1u8];
        key.extend_from_slice(public);
        let vkey = format!("{name}+{}+{}", hex::encode(id), B64.encode(key));
        let body = format!("{name}\n{size}\n{}\n", B64.encode([9u8; 32]));
        let mut blob = id.to_vec();
        blob.extend_from_slice(pair.sign(body.as_bytes()).as_ref());
        (
            format!("{body}\n\u{2014} {name} {}\n", B64.encode(blob)),
            vkey,
        )
    }

    #[test]
    fn verifies_and_rejects_a_changed_note() {
        let (note, vkey) = signed(42);
        let cp = verify_checkpoint(&note, &vkey).unwrap();
        assert_eq!((cp.size, cp.root), (42, [9; 32]));
        let forged = note.replace("\n42\n", "\n43\n");
        assert!(verify_checkpoint(&forged, &vkey).is_err());
        assert!(verify_checkpoint(&note, "x+00000000+AQ==").is_err());
    }
}
