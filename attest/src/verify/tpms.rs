//! Parsers of the two TPM structures a quote consists of (TPM 2.0 Part 2):
//! TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE, and an ECDSA TPMT_SIGNATURE.
//! Big-endian throughout; trailing bytes are refused. Both inputs come from
//! the appliance and are untrusted.

use crate::pcr::MAX_PCR_INDEX;

/// TPM_GENERATED_VALUE.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// TPM_ALG_ECDSA.
pub const ALG_ECDSA: u16 = 0x0018;
/// TPM_ALG_SHA256.
pub const ALG_SHA256: u16 = 0x000b;

/// A parsed TPMS_ATTEST (quote).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInfo {
    /// `magic`: must be [`TPM_GENERATED`].
    pub magic: u32,
    /// `type`: must be [`ST_ATTEST_QUOTE`].
    pub kind: u16,
    /// `qualifiedSigner` (TPM2B_NAME content).
    pub qualified_signer: Vec<u8>,
    /// `extraData`: the qualifying data.
    pub extra_data: Vec<u8>,
    /// `clockInfo.clock` (ms).
    pub clock: u64,
    /// `clockInfo.resetCount`.
    pub reset_count: u32,
    /// `clockInfo.restartCount`.
    pub restart_count: u32,
    /// `clockInfo.safe`.
    pub safe: bool,
    /// `firmwareVersion`.
    pub firmware_version: u64,
    /// The selected PCRs per bank: (hash algorithm, ascending indices).
    pub banks: Vec<(u16, Vec<u8>)>,
    /// `pcrDigest`.
    pub pcr_digest: Vec<u8>,
}

/// A parsed ECDSA TPMT_SIGNATURE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcdsaSignature {
    /// The signature hash algorithm.
    pub hash: u16,
    /// `r`, big-endian, as sent.
    pub r: Vec<u8>,
    /// `s`, big-endian, as sent.
    pub s: Vec<u8>,
}

impl EcdsaSignature {
    /// `r ‖ s`, each left-padded to 32 bytes (ring's FIXED encoding);
    /// `None` if either is longer than 32 bytes.
    pub fn fixed(&self) -> Option<[u8; 64]> {
        let mut out = [0u8; 64];
        let r = strip_zeros(&self.r);
        let s = strip_zeros(&self.s);
        if r.len() > 32 || s.len() > 32 {
            return None;
        }
        out[32 - r.len()..32].copy_from_slice(r);
        out[64 - s.len()..].copy_from_slice(s);
        Some(out)
    }
}

fn strip_zeros(v: &[u8]) -> &[u8] {
    let first = v.iter().position(|b| *b != 0).unwrap_or(v.len());
    &v[first..]
}

/// Why a structure did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {problem}")]
pub struct ParseError {
    /// Which structure.
    pub what: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

struct Reader<'a> {
    what: &'static str,
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn err(&self, problem: &'static str) -> ParseError {
        ParseError {
            what: self.what,
            problem,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        if self.bytes.len() < n {
            return Err(self.err("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// A TPM2B: u16 size, then that many bytes.
    fn sized(&mut self) -> Result<Vec<u8>, ParseError> {
        let n = self.u16()?;
        Ok(self.take(usize::from(n))?.to_vec())
    }

    fn finish(&self) -> Result<(), ParseError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// Parses a TPMS_ATTEST whose attested part is a TPMS_QUOTE_INFO. The
/// magic and type are returned, not judged (the verifier names them).
pub fn parse_quote(bytes: &[u8]) -> Result<QuoteInfo, ParseError> {
    let mut r = Reader {
        what: "TPMS_ATTEST",
        bytes,
    };
    let magic = r.u32()?;
    let kind = r.u16()?;
    let qualified_signer = r.sized()?;
    let extra_data = r.sized()?;
    let clock = r.u64()?;
    let reset_count = r.u32()?;
    let restart_count = r.u32()?;
    let safe = r.u8()? != 0;
    let firmware_version = r.u64()?;
    if kind != ST_ATTEST_QUOTE {
        // The rest is another structure; keep what was read for the report.
        return Ok(QuoteInfo {
            magic,
            kind,
            qualified_signer,
            extra_data,
            clock,
            reset_count,
            restart_count,
            safe,
            firmware_version,
            banks: Vec::new(),
            pcr_digest: Vec::new(),
        });
    }
    let banks = pcr_selection(&mut r)?;
    let pcr_digest = r.sized()?;
    r.finish()?;
    Ok(QuoteInfo {
        magic,
        kind,
        qualified_signer,
        extra_data,
        clock,
        reset_count,
        restart_count,
        safe,
        firmware_version,
        banks,
        pcr_digest,
    })
}

/// TPML_PCR_SELECTION: count, then per bank hash, sizeofSelect, bitmap.
fn pcr_selection(r: &mut Reader<'_>) -> Result<Vec<(u16, Vec<u8>)>, ParseError> {
    let count = r.u32()?;
    if count > 16 {
        return Err(r.err("too many PCR banks"));
    }
    let mut banks = Vec::new();
    for _ in 0..count {
        let hash = r.u16()?;
        let size = r.u8()?;
        let bitmap = r.take(usize::from(size))?;
        let mut indices = Vec::new();
        for (octet, bits) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                if bits & (1 << bit) != 0 {
                    let index = octet * 8 + bit;
                    match u8::try_from(index) {
                        Ok(i) if i <= MAX_PCR_INDEX => indices.push(i),
                        _ => return Err(r.err("PCR index out of range")),
                    }
                }
            }
        }
        banks.push((hash, indices));
    }
    Ok(banks)
}

/// Parses a TPMT_SIGNATURE that must be ECDSA.
pub fn parse_ecdsa_signature(bytes: &[u8]) -> Result<EcdsaSignature, ParseError> {
    let mut r = Reader {
        what: "TPMT_SIGNATURE",
        bytes,
    };
    if r.u16()? != ALG_ECDSA {
        return Err(r.err("not an ECDSA signature"));
    }
    let hash = r.u16()?;
    let sig_r = r.sized()?;
    let sig_s = r.sized()?;
    r.finish()?;
    Ok(EcdsaSignature {
        hash,
        r: sig_r,
        s: sig_s,
    })
}

/// TPM_ALG_ECC.
pub const ALG_ECC: u16 = 0x0023;
/// TPM_ALG_NULL.
pub const ALG_NULL: u16 = 0x0010;
/// TPM_ECC_NIST_P256.
pub const ECC_NIST_P256: u16 = 0x0003;

/// A parsed ECC TPMT_PUBLIC (an AK's public area).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EccPublicArea {
    /// `nameAlg`.
    pub name_alg: u16,
    /// `objectAttributes` (TPMA_OBJECT bits).
    pub attributes: u32,
    /// The signing scheme and its hash (`TPM_ALG_NULL` has no hash: 0).
    pub scheme: (u16, u16),
    /// `curveID`.
    pub curve: u16,
    /// `unique.x`, big-endian.
    pub x: Vec<u8>,
    /// `unique.y`, big-endian.
    pub y: Vec<u8>,
}

/// Parses a TPM2B_PUBLIC that must hold an ECC TPMT_PUBLIC; returns it and
/// the TPMT_PUBLIC bytes (what the object's name hashes).
pub fn parse_ecc_public(bytes: &[u8]) -> Result<(EccPublicArea, &[u8]), ParseError> {
    let mut outer = Reader {
        what: "TPM2B_PUBLIC",
        bytes,
    };
    let size = outer.u16()?;
    let area = outer.take(usize::from(size))?;
    outer.finish()?;
    let mut r = Reader {
        what: "TPMT_PUBLIC",
        bytes: area,
    };
    if r.u16()? != ALG_ECC {
        return Err(r.err("not an ECC key"));
    }
    let name_alg = r.u16()?;
    let attributes = r.u32()?;
    let _auth_policy = r.sized()?;
    if r.u16()? != ALG_NULL {
        let _key_bits_and_mode = r.take(4)?;
    }
    let scheme = match r.u16()? {
        ALG_NULL => (ALG_NULL, 0),
        scheme => (scheme, r.u16()?),
    };
    let curve = r.u16()?;
    if r.u16()? != ALG_NULL {
        let _kdf_hash = r.u16()?;
    }
    let x = r.sized()?;
    let y = r.sized()?;
    r.finish()?;
    let parsed = EccPublicArea {
        name_alg,
        attributes,
        scheme,
        curve,
        x,
        y,
    };
    Ok((parsed, area))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample_quote(extra: &[u8], digest: &[u8; 32]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&TPM_GENERATED.to_be_bytes());
        v.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
        v.extend_from_slice(&[0, 2, 0xaa, 0xbb]);
        v.extend_from_slice(&(extra.len() as u16).to_be_bytes());
        v.extend_from_slice(extra);
        v.extend_from_slice(&[0; 17]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0x0b, 3, 0x81, 0x08, 0]);
        v.extend_from_slice(&[0, 32]);
        v.extend_from_slice(digest);
        v
    }

    #[test]
    fn parses_a_quote_and_refuses_garbage() {
        let bytes = sample_quote(b"nonce", &[5; 32]);
        let q = parse_quote(&bytes).unwrap();
        assert_eq!(q.magic, TPM_GENERATED);
        assert_eq!(q.extra_data, b"nonce");
        assert_eq!(q.banks, vec![(ALG_SHA256, vec![0, 7, 11])]);
        assert_eq!(q.pcr_digest, vec![5; 32]);
        for cut in 0..bytes.len() {
            assert!(parse_quote(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(parse_quote(&long).is_err());
    }

    #[test]
    fn signature_pads_r_and_s() {
        let mut v = vec![0, 0x18, 0, 0x0b, 0, 31];
        v.extend_from_slice(&[1; 31]);
        v.extend_from_slice(&[0, 33, 0]);
        v.extend_from_slice(&[2; 32]);
        let sig = parse_ecdsa_signature(&v).unwrap();
        let fixed = sig.fixed().unwrap();
        assert_eq!(fixed[0], 0);
        assert_eq!(&fixed[1..32], &[1; 31]);
        assert_eq!(&fixed[32..], &[2; 32]);
        assert!(parse_ecdsa_signature(&v[..v.len() - 1]).is_err());
        v[1] = 0x14;
        assert!(parse_ecdsa_signature(&v).is_err());
    }
}
