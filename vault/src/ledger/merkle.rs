//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.
//!
//! Leaf hash `SHA-256(0x00 ‖ entry)`, node hash `SHA-256(0x01 ‖ left ‖ right)`,
//! the empty tree's root is `SHA-256("")`. The tree over `n` leaves splits at
//! `k`, the largest power of two smaller than `n`.
//!
//! [`MerkleTree`] stores every leaf hash and, per level, the hash of every
//! complete, aligned power-of-two subtree (about `2n` hashes in all, 64 MiB
//! for a million entries). Every left child in the RFC recursion is such a
//! subtree, so the root of any prefix is `O(log n)` lookups and hashes, and
//! proofs are `O(log² n)`, for any tree size up to the current one. Offline
//! verification builds one; the running ledger uses
//! [`super::tiles::TiledTree`], which gives the same answers in bounded memory.

use ring::digest::{Context, SHA256};

/// A SHA-256 digest: a leaf hash, node hash or tree root.
pub type Hash = [u8; 32];

/// Why a root or proof could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    /// The tree size asked for is larger than the tree.
    #[error("tree size {size} exceeds the ledger size {have}")]
    SizeTooLarge {
        /// The size asked for.
        size: u64,
        /// The number of leaves held.
        have: u64,
    },
    /// The leaf index is not below the tree size.
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof needs `first <= second`.
    #[error("first size {first} is larger than second size {second}")]
    SizesOutOfOrder {
        /// The older tree size.
        first: u64,
        /// The newer tree size.
        second: u64,
    },
}

/// The leaf hash of one entry: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    finish(ctx)
}

/// The interior node hash: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(&[0x01]);
    ctx.update(left);
    ctx.update(right);
    finish(ctx)
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    finish(Context::new(&SHA256))
}

fn finish(ctx: Context) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The largest power of two strictly smaller than `n` (`n >= 2`).
pub(crate) fn split_point(n: u64) -> u64 {
    let k = n.next_power_of_two();
    if k == n {
        n / 2
    } else {
        k / 2
    }
}

/// An append-only Merkle tree over leaf hashes with cached complete subtrees.
#[derive(Debug, Default, Clone)]
pub struct MerkleTree {
    /// `levels[h][i]` is the hash of leaves `[i·2^h, (i+1)·2^h)`.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// The stored leaf hash at `index`, if present.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels
            .first()?
            .get(usize::try_from(index).ok()?)
            .copied()
    }

    /// The hash of the complete aligned subtree of height `height` at
    /// position `i` (leaves `[i·2^height, (i+1)·2^height)`), if held.
    pub(crate) fn node(&self, height: usize, i: u64) -> Option<Hash> {
        self.levels
            .get(height)?
            .get(usize::try_from(i).ok()?)
            .copied()
    }

    /// How many hashes the tree holds: every leaf and complete subtree.
    pub(crate) fn stored_hashes(&self) -> usize {
        self.levels.iter().map(Vec::len).sum()
    }

    /// Appends one leaf hash, completing any subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut height = 0;
        loop {
            if self.levels.len() == height {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[height];
            level.push(hash);
            if level.len() % 2 == 1 {
                return;
            }
            let n = level.len();
            hash = node_hash(&level[n - 2], &level[n - 1]);
            height += 1;
        }
    }

    /// `MTH(D[start:end])` for a range that occurs in the RFC recursion.
    fn subtree(&self, start: u64, end: u64) -> Hash {
        let n = end - start;
        if n.is_power_of_two() && start & (n - 1) == 0 {
            let height = n.trailing_zeros() as usize;
            // Complete aligned subtrees below the tree size are always cached.
            return self.levels[height][(start / n) as usize];
        }
        let k = split_point(n);
        node_hash(
            &self.subtree(start, start + k),
            &self.subtree(start + k, end),
        )
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.size() {
            return Err(MerkleError::SizeTooLarge {
                size,
                have: self.size(),
            });
        }
        Ok(())
    }

    /// The root of the tree over the first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Ok(self.subtree(0, size))
    }

    /// The RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// `PATH(m, D[start:end])`, appended in bottom-up order.
    fn path(&self, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, start, start + k, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.path(m - k, start + k, end, out);
            out.push(self.subtree(start, start + k));
        }
    }

    /// The RFC 9162 §2.1.4.1 consistency proof from `first` to `second` leaves.
    ///
    /// Empty when `first == 0` or `first == second`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(second)?;
        if first > second {
            return Err(MerkleError::SizesOutOfOrder { first, second });
        }
        let mut proof = Vec::new();
        if first > 0 && first < second {
            self.subproof(first, 0, second, true, &mut proof);
        }
        Ok(proof)
    }

    /// `SUBPROOF(m, D[start:end], b)`.
    fn subproof(&self, m: u64, start: u64, end: u64, b: bool, out: &mut Vec<Hash>) {
        let n = end - start;
        if m == n {
            if !b {
                out.push(self.subtree(start, end));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, b, out);
            out.push(self.subtree(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, out);
            out.push(self.subtree(start, start + k));
        }
    }
}

/// Verifies an inclusion proof exactly as RFC 9162 §2.1.3.2.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && ct_eq(&r, root)
}

/// Verifies a consistency proof exactly as RFC 9162 §2.1.4.2.
///
/// `first == second` needs an empty proof and equal roots; `first == 0`
/// needs an empty proof (the empty tree is a prefix of every tree).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == 0 || first == second {
        return proof.is_empty() && (first == 0 || ct_eq(first_root, second_root));
    }
    let Some((head, rest)) = proof.split_first() else {
        return false;
    };
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
        path.push(*head);
    } else {
        path.push(*head);
    }
    path.extend_from_slice(rest);
    consistency_walk(first - 1, second - 1, &path, first_root, second_root)
}

/// Steps 3 to 7 of RFC 9162 §2.1.4.2 over a non-empty path.
fn consistency_walk(mut fnode: u64, mut snode: u64, path: &[Hash], r1: &Hash, r2: &Hash) -> bool {
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    ct_eq(&fr, r1) && ct_eq(&sr, r2) && snode == 0
}

fn ct_eq(a: &Hash, b: &Hash) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(&a[..], &b[..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tree(n: u64) -> MerkleTree {
        let mut t = MerkleTree::new();
        for i in 0..n {
            t.push(leaf_hash(format!("entry {i}").as_bytes()));
        }
        t
    }

    /// The naive RFC 9162 §2.1.1 definition, for cross-checking the cache.
    fn naive(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive(&leaves[..k]), &naive(&leaves[k..]))
            }
        }
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rfc6962_known_answer_roots() {
        // Leaves and roots from the RFC 6962 reference test vectors
        // (certificate-transparency-go merkletree tests).
        let leaves: [&[u8]; 8] = [
            b"",
            &[0x00],
            &[0x10],
            &[0x20, 0x21],
            &[0x30, 0x31],
            &[0x40, 0x41, 0x42, 0x43],
            &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            &[
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
                0x6e, 0x6f,
            ],
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut t = MerkleTree::new();
        for l in leaves {
            t.push(leaf_hash(l));
        }
        for (i, want) in roots.iter().enumerate() {
            assert_eq!(
                hex::encode(t.root(i as u64 + 1).unwrap()),
                *want,
                "size {}",
                i + 1
            );
        }
    }

    #[test]
    fn cached_roots_match_naive_definition() {
        let t = tree(70);
        let leaves: Vec<Hash> = (0..70).map(|i| t.leaf(i).unwrap()).collect();
        for n in 0..=70 {
            assert_eq!(t.root(n).unwrap(), naive(&leaves[..n as usize]), "size {n}");
        }
        assert!(t.root(71).is_err());
    }

    #[test]
    fn every_inclusion_proof_up_to_8_verifies_and_a_flipped_bit_fails() {
        let t = tree(8);
        for size in 1..=8 {
            let root = t.root(size).unwrap();
            for index in 0..size {
                let leaf = t.leaf(index).unwrap();
                let mut proof = t.inclusion_proof(index, size).unwrap();
                assert!(verify_inclusion(index, size, &leaf, &proof, &root));
                let mut bad_leaf = leaf;
                bad_leaf[0] ^= 1;
                assert!(!verify_inclusion(index, size, &bad_leaf, &proof, &root));
                if let Some(p) = proof.first_mut() {
                    p[31] ^= 0x80;
                    assert!(!verify_inclusion(index, size, &leaf, &proof, &root));
                }
            }
        }
    }

    #[test]
    fn every_consistency_proof_up_to_8_verifies_and_a_flipped_bit_fails() {
        let t = tree(8);
        for second in 1..=8 {
            let r2 = t.root(second).unwrap();
            for first in 1..=second {
                let r1 = t.root(first).unwrap();
                let mut proof = t.consistency_proof(first, second).unwrap();
                assert!(
                    verify_consistency(first, second, &r1, &r2, &proof),
                    "{first}->{second}"
                );
                let mut bad = r1;
                bad[5] ^= 4;
                assert!(!verify_consistency(first, second, &bad, &r2, &proof));
                if let Some(p) = proof.last_mut() {
                    p[0] ^= 1;
                    assert!(!verify_consistency(first, second, &r1, &r2, &proof));
                }
            }
        }
    }

    #[test]
    fn proofs_at_arbitrary_sizes_of_a_large_tree() {
        let t = tree(5000);
        for &(index, size) in &[(0u64, 5000u64), (4999, 5000), (1234, 4097), (4096, 4097)] {
            let proof = t.inclusion_proof(index, size).unwrap();
            assert!(verify_inclusion(
                index,
                size,
                &t.leaf(index).unwrap(),
                &proof,
                &t.root(size).unwrap()
            ));
        }
        for &(a, b) in &[(1u64, 5000u64), (4096, 5000), (3333, 4444), (4999, 5000)] {
            let proof = t.consistency_proof(a, b).unwrap();
            assert!(verify_consistency(
                a,
                b,
                &t.root(a).unwrap(),
                &t.root(b).unwrap(),
                &proof
            ));
        }
    }
}
