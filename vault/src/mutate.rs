//! Deterministic mutations of valid inputs, for tests that feed the
//! parsers of untrusted input (imports, leaked files, row filters) malformed bytes:
//! release builds abort on panic, so a parser must refuse, never panic.

/// Bytes that matter to CSV and JSON Lines syntax.
const SYNTAX: &[u8] = b"\",\n\r{}[]:\\\x00\xff\xef\xbb\xbf ";

/// `count` mutations of `seed`, each with one to four changes: a flipped
/// bit, a random byte, a syntax byte inserted, a byte removed, or the tail
/// cut off. The same seed and count give the same mutations.
pub(crate) fn mutations(seed: &[u8], count: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    mutations_with(seed, count, SYNTAX)
}

/// As [`mutations`], inserting bytes of `syntax` (the bytes that matter to
/// the parser under test).
pub(crate) fn mutations_with<'a>(
    seed: &'a [u8],
    count: usize,
    syntax: &'a [u8],
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |_| {
        let mut bytes = seed.to_vec();
        for _ in 0..1 + next() % 4 {
            mutate_once(&mut bytes, syntax, &mut next);
        }
        bytes
    })
}

fn mutate_once(bytes: &mut Vec<u8>, syntax: &[u8], next: &mut impl FnMut() -> u64) {
    if bytes.is_empty() {
        bytes.push(syntax[0]);
        return;
    }
    let at = (next() as usize) % bytes.len();
    match next() % 5 {
        0 => bytes[at] ^= 1 << (next() % 8),
        1 => bytes[at] = next() as u8,
        2 => bytes.insert(at, syntax[(next() as usize) % syntax.len()]),
        3 => {
            bytes.remove(at);
        }
        _ => bytes.truncate(at),
    }
}
