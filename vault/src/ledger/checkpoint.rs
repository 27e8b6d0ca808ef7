//! Checkpoints (C2SP tlog-checkpoint) signed as C2SP signed-notes with Ed25519.
//!
//! Body: three lines, each ending in `\n`: the origin (`zonevault/<appliance-id>`),
//! the tree size in decimal, the root hash in standard base64. The note is the
//! body, one empty line, then one line per signature:
//! `— <name> <base64(key id[4] ‖ Ed25519 signature[64])>\n` (U+2014, space).
//! The signature covers the body bytes including its final newline.
//! Key id = first 4 bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
//! Verifier key string: `<name>+<key id, 8 lowercase hex>+<base64(0x01 ‖ public key)>`.
//! The key name is the checkpoint's origin.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use super::merkle::Hash;

/// Ed25519's signature type byte in signed-note keys.
const ALG_ED25519: u8 = 0x01;
/// The signature line prefix: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint, note or verifier key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key name is empty or holds whitespace or `+`.
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    BadKeyName(String),
    /// The verifier key string is malformed.
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(&'static str),
    /// The note text is malformed.
    #[error("malformed signed note: {0}")]
    Malformed(&'static str),
    /// The checkpoint body is malformed.
    #[error("malformed checkpoint: {0}")]
    BadCheckpoint(&'static str),
    /// No signature line by the expected key.
    #[error("no signature by key {0:?}")]
    NoSignature(String),
    /// A signature line by the expected key did not verify.
    #[error("signature by key {0:?} does not verify")]
    BadSignature(String),
    /// The checkpoint origin differs from the key name.
    #[error("checkpoint origin {origin:?} does not match key name {key:?}")]
    OriginMismatch {
        /// Origin in the body.
        origin: String,
        /// Name of the verifier key.
        key: String,
    },
}

/// A tree head: origin, size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log origin, e.g. `zonevault/appliance-1`.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root over the first `size` leaves.
    pub root: Hash,
}

impl Checkpoint {
    /// The C2SP tlog-checkpoint body text (three `\n`-terminated lines).
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// Parses a checkpoint body. Extension lines are rejected.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        let rest = body
            .strip_suffix('\n')
            .ok_or(NoteError::BadCheckpoint("body must end with a newline"))?;
        let lines: Vec<&str> = rest.split('\n').collect();
        let [origin, size, root] = lines[..] else {
            return Err(NoteError::BadCheckpoint("expected exactly 3 lines"));
        };
        check_key_name(origin).map_err(|_| NoteError::BadCheckpoint("bad origin line"))?;
        let decimal = !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit());
        if !decimal || (size.len() > 1 && size.starts_with('0')) {
            return Err(NoteError::BadCheckpoint("size is not a canonical decimal"));
        }
        let size = size
            .parse()
            .map_err(|_| NoteError::BadCheckpoint("size out of range"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r.as_slice()).ok())
            .ok_or(NoteError::BadCheckpoint("root is not base64 of 32 bytes"))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// Checks a signed-note key name: non-empty, no Unicode whitespace, no `+`.
pub fn check_key_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadKeyName(name.to_owned()));
    }
    Ok(())
}

/// The signed-note key id of an Ed25519 public key under `name`.
pub fn key_id(name: &str, public_key: &[u8]) -> [u8; 4] {
    let mut input = Vec::with_capacity(name.len() + 2 + public_key.len());
    input.extend_from_slice(name.as_bytes());
    input.push(b'\n');
    input.push(ALG_ED25519);
    input.extend_from_slice(public_key);
    let d = digest(&SHA256, &input);
    let mut id = [0u8; 4];
    id.copy_from_slice(&d.as_ref()[..4]);
    id
}

fn verifier_key_string(name: &str, id: [u8; 4], public_key: &[u8]) -> String {
    let mut key = vec![ALG_ED25519];
    key.extend_from_slice(public_key);
    format!("{name}+{}+{}", hex::encode(id), B64.encode(key))
}

/// Signs checkpoints with the ledger's Ed25519 key. No `Debug`, no `Clone`.
pub struct CheckpointSigner {
    key_pair: Ed25519KeyPair,
    name: String,
    id: [u8; 4],
}

impl CheckpointSigner {
    /// A signer named `name` (the origin) from a 32-byte Ed25519 seed.
    pub fn new(name: &str, seed: &Zeroizing<[u8; 32]>) -> Result<Self, NoteError> {
        check_key_name(name)?;
        let key_pair = Ed25519KeyPair::from_seed_unchecked(seed.as_ref())
            .map_err(|_| NoteError::BadVerifierKey("seed rejected"))?;
        let id = key_id(name, key_pair.public_key().as_ref());
        Ok(Self {
            key_pair,
            name: name.to_owned(),
            id,
        })
    }

    /// The key name (the origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key string that checks this signer's notes.
    pub fn verifier_key(&self) -> String {
        verifier_key_string(&self.name, self.id, self.key_pair.public_key().as_ref())
    }

    /// The signed note text for `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        self.sign_note(&checkpoint.body())
    }

    /// A signed note over any `body` (which must end in a newline): the
    /// same envelope and key serve checkpoints, extract manifests and
    /// destruction certificates, so one published verifier key checks all.
    pub fn sign_note(&self, body: &str) -> String {
        let sig = self.key_pair.sign(body.as_bytes());
        let mut blob = self.id.to_vec();
        blob.extend_from_slice(sig.as_ref());
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob))
    }
}

/// A parsed signed-note verifier key for Ed25519.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    public_key: [u8; 32],
}

impl NoteVerifier {
    /// Parses `<name>+<8 hex key id>+<base64(0x01 ‖ public key)>` and checks the key id.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.trim_end_matches('\n').splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(NoteError::BadVerifierKey("expected name+keyid+key"));
        };
        check_key_name(name)?;
        let id: [u8; 4] = hex::decode(id_hex)
            .ok()
            .filter(|_| id_hex.len() == 8 && id_hex == id_hex.to_ascii_lowercase())
            .and_then(|v| v.try_into().ok())
            .ok_or(NoteError::BadVerifierKey(
                "key id is not 8 lowercase hex digits",
            ))?;
        let key = B64
            .decode(key_b64)
            .map_err(|_| NoteError::BadVerifierKey("key is not standard base64"))?;
        let Some((&ALG_ED25519, public)) = key.split_first() else {
            return Err(NoteError::BadVerifierKey("key type is not Ed25519 (0x01)"));
        };
        let public_key: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadVerifierKey("Ed25519 key is not 32 bytes"))?;
        if key_id(name, &public_key) != id {
            return Err(NoteError::BadVerifierKey(
                "key id does not match name and key",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            id,
            public_key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies a signed checkpoint note and returns its checkpoint.
    ///
    /// Needs one valid signature by this key; signatures by other keys are
    /// ignored. The checkpoint origin must equal the key name.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let body = self.verify_note(note)?;
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != self.name {
            return Err(NoteError::OriginMismatch {
                origin: checkpoint.origin,
                key: self.name.clone(),
            });
        }
        Ok(checkpoint)
    }

    /// Checks a signed note of any body and returns the body (with its
    /// final newline). Needs one valid signature by this key; signatures by
    /// other keys are ignored.
    pub fn verify_note<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (body, sigs) = split_note(note)?;
        let mut found = false;
        for line in sigs.split_terminator('\n') {
            let (name, blob) = parse_sig_line(line)?;
            if name != self.name || blob.len() != 68 || blob[..4] != self.id {
                continue;
            }
            found = true;
            let key = signature::UnparsedPublicKey::new(&signature::ED25519, &self.public_key);
            if key.verify(body.as_bytes(), &blob[4..]).is_err() {
                return Err(NoteError::BadSignature(self.name.clone()));
            }
        }
        if !found {
            return Err(NoteError::NoSignature(self.name.clone()));
        }
        Ok(body)
    }
}

/// Splits a note into its body (with final newline) and signature block.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed("control character in note"));
    }
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed("note must end with a newline"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(NoteError::Malformed("no blank line before the signatures"))?;
    let (body, sigs) = (&note[..=split], &note[split + 2..]);
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature lines"));
    }
    Ok((body, sigs))
}

/// Parses `— <name> <base64>` into the name and decoded signature blob.
fn parse_sig_line(line: &str) -> Result<(&str, Vec<u8>), NoteError> {
    let rest = line.strip_prefix(SIG_PREFIX).ok_or(NoteError::Malformed(
        "signature line must start with U+2014 and a space",
    ))?;
    let (name, b64) = rest.split_once(' ').ok_or(NoteError::Malformed(
        "signature line must be '— name signature'",
    ))?;
    check_key_name(name).map_err(|_| NoteError::Malformed("bad key name in signature line"))?;
    let blob = B64
        .decode(b64)
        .map_err(|_| NoteError::Malformed("signature is not standard base64"))?;
    if blob.len() < 5 {
        return Err(NoteError::Malformed(
            "signature shorter than key id plus one byte",
        ));
    }
    Ok((name, blob))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NAME: &str = "zonevault/test-appliance";

    fn signer() -> CheckpointSigner {
        CheckpointSigner::new(NAME, &Zeroizing::new([7u8; 32])).unwrap()
    }

    fn cp(size: u64) -> Checkpoint {
        Checkpoint {
            origin: NAME.into(),
            size,
            root: [size as u8; 32],
        }
    }

    #[test]
    fn note_roundtrip() {
        let s = signer();
        let v = NoteVerifier::parse(&s.verifier_key()).unwrap();
        assert_eq!(v.verify(&s.sign(&cp(42))).unwrap(), cp(42));
    }

    #[test]
    fn note_format_is_hand_checked() {
        let s = signer();
        let note = s.sign(&cp(3));
        let body = format!("{NAME}\n3\n{}\n", B64.encode([3u8; 32]));
        assert!(note.starts_with(&format!("{body}\n\u{2014} {NAME} ")));
        let sig_line = note[body.len() + 1..].trim_end_matches('\n');
        let blob = B64.decode(sig_line.rsplit(' ').next().unwrap()).unwrap();
        assert_eq!(blob.len(), 68);
        let pk = s.key_pair.public_key().as_ref().to_vec();
        // Key id by hand: SHA-256(name ‖ "\n" ‖ 0x01 ‖ pk)[..4].
        let mut msg = format!("{NAME}\n").into_bytes();
        msg.push(1);
        msg.extend_from_slice(&pk);
        assert_eq!(&blob[..4], &digest(&SHA256, &msg).as_ref()[..4]);
        let vk = s.verifier_key();
        let parts: Vec<&str> = vk.split('+').collect();
        assert_eq!(parts[0], NAME);
        assert_eq!(parts[1], hex::encode(&blob[..4]));
        assert_eq!(B64.decode(parts[2]).unwrap()[0], 1);
    }

    #[test]
    fn tampered_notes_are_rejected_with_clear_errors() {
        let s = signer();
        let v = NoteVerifier::parse(&s.verifier_key()).unwrap();
        let note = s.sign(&cp(9));
        let bumped = note.replacen("\n9\n", "\n10\n", 1);
        assert_eq!(v.verify(&bumped), Err(NoteError::BadSignature(NAME.into())));
        let no_sig = note.split("\n\n").next().unwrap().to_owned() + "\n\n";
        assert!(matches!(v.verify(&no_sig), Err(NoteError::Malformed(_))));
        let hyphen = note.replace('\u{2014}', "-");
        assert!(matches!(v.verify(&hyphen), Err(NoteError::Malformed(_))));
        let other = CheckpointSigner::new("zonevault/other", &Zeroizing::new([8u8; 32])).unwrap();
        assert_eq!(
            v.verify(&other.sign(&cp(1))),
            Err(NoteError::NoSignature(NAME.into()))
        );
    }

    #[test]
    fn malformed_verifier_keys_and_bodies() {
        let vk = signer().verifier_key();
        assert!(NoteVerifier::parse("nope").is_err());
        let wrong_id = vk.replacen('+', "+0", 1);
        assert!(NoteVerifier::parse(&wrong_id).is_err());
        assert!(Checkpoint::parse_body("a\n01\nAAAA\n").is_err());
        assert!(Checkpoint::parse_body("a\n1\n").is_err());
        assert!(CheckpointSigner::new("has space", &Zeroizing::new([0; 32])).is_err());
    }
}
