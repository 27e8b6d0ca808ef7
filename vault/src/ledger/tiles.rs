//! The running ledger's Merkle tree, in bounded memory.
//!
//! [`TiledTree`] gives exactly the answers of
//! [`MerkleTree`](super::merkle::MerkleTree) (roots, RFC 9162 inclusion and
//! consistency proofs, leaf hashes, for any size up to the current one) but
//! keeps in memory only the hashes of complete aligned subtrees of height
//! [`TILE_HEIGHT`] or more (256 leaves, the C2SP tlog-tiles tile height) and
//! the leaf hashes of the last, incomplete tile. Anything lower lies inside
//! one complete tile and is recomputed from that tile's 256 leaf hashes,
//! read through a [`LeafSource`] (the ledger's `entries.idx`, see
//! [`super::record_index`]).
//!
//! Memory: for `n` leaves about `2n/256` hashes of 32 bytes (one per tile,
//! plus their parents), a quarter of a byte per entry (about 250 KB per
//! million entries), plus one tile of leaf hashes (8 KiB). A root over the
//! current size reads nothing; a proof reads at most one tile per tree
//! size involved and hashes at most 255 leaves per tile.

use super::merkle::{empty_root, node_hash, split_point, Hash, MerkleError, MerkleTree};
use super::LedgerError;

/// Height of a tile: complete subtrees at least this high are kept in memory.
pub const TILE_HEIGHT: u32 = 8;
/// Leaves in a tile (`2^TILE_HEIGHT`).
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// The leaf hashes of one complete tile, leaves `[t·256, (t+1)·256)`.
pub type Tile = [Hash; TILE_WIDTH as usize];

/// Where the leaf hashes of complete tiles are read from.
pub trait LeafSource {
    /// The leaf hashes of complete tile `tile`.
    fn tile(&self, tile: u64) -> Result<Box<Tile>, LedgerError>;
    /// The leaf hash of entry `index`, which lies in a complete tile.
    fn leaf(&self, index: u64) -> Result<Hash, LedgerError>;
}

/// An append-only RFC 6962 Merkle tree that keeps only tile-level hashes in memory.
#[derive(Default)]
pub struct TiledTree {
    size: u64,
    /// A Merkle tree whose leaves are the roots of the complete tiles: its
    /// node `(h, i)` is the hash of leaves `[i·2^(h+8), (i+1)·2^(h+8))`.
    tiles: MerkleTree,
    /// Leaf hashes of the incomplete last tile, leaves `[size - size % 256, size)`.
    tail: Vec<Hash>,
}

impl TiledTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many 32-byte hashes the tree holds in memory.
    pub fn memory_hashes(&self) -> usize {
        self.tiles.stored_hashes() + self.tail.len()
    }

    /// Appends one leaf hash; a full tail becomes a tile hash.
    pub fn push(&mut self, leaf: Hash) {
        self.tail.push(leaf);
        self.size += 1;
        if self.tail.len() as u64 == TILE_WIDTH {
            let tile = range_root(&self.tail);
            self.tail.clear();
            self.tiles.push(tile);
        }
    }

    fn check_size(&self, size: u64) -> Result<(), MerkleError> {
        if size > self.size {
            return Err(MerkleError::SizeTooLarge {
                size,
                have: self.size,
            });
        }
        Ok(())
    }

    /// The leaf hash of entry `index`.
    pub fn leaf(&self, index: u64, source: &impl LeafSource) -> Result<Hash, LedgerError> {
        if index >= self.size {
            return Err(MerkleError::IndexOutOfRange {
                index,
                size: self.size,
            }
            .into());
        }
        let tail_start = self.size - self.tail.len() as u64;
        match index.checked_sub(tail_start) {
            Some(i) => Ok(self.tail[i as usize]),
            None => source.leaf(index),
        }
    }

    /// The root of the tree over the first `size` leaves.
    pub fn root(&self, size: u64, source: &impl LeafSource) -> Result<Hash, LedgerError> {
        self.check_size(size)?;
        if size == 0 {
            return Ok(empty_root());
        }
        Walk::new(self, source).subtree(0, size)
    }

    /// The RFC 9162 §2.1.3.1 inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion_proof(
        &self,
        index: u64,
        size: u64,
        source: &impl LeafSource,
    ) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size }.into());
        }
        let mut proof = Vec::new();
        Walk::new(self, source).path(index, 0, size, &mut proof)?;
        Ok(proof)
    }

    /// The RFC 9162 §2.1.4.1 consistency proof from `first` to `second` leaves.
    ///
    /// Empty when `first == 0` or `first == second`.
    pub fn consistency_proof(
        &self,
        first: u64,
        second: u64,
        source: &impl LeafSource,
    ) -> Result<Vec<Hash>, LedgerError> {
        self.check_size(second)?;
        if first > second {
            return Err(MerkleError::SizesOutOfOrder { first, second }.into());
        }
        let mut proof = Vec::new();
        if first > 0 && first < second {
            Walk::new(self, source).subproof(first, 0, second, true, &mut proof)?;
        }
        Ok(proof)
    }
}

/// One root or proof computation: the tree, its leaf source, and the
/// complete tiles read so far (a proof revisits the same tile per level).
struct Walk<'a, S> {
    tree: &'a TiledTree,
    source: &'a S,
    read: Vec<(u64, Box<Tile>)>,
}

impl<'a, S: LeafSource> Walk<'a, S> {
    fn new(tree: &'a TiledTree, source: &'a S) -> Self {
        Self {
            tree,
            source,
            read: Vec::new(),
        }
    }

    /// `MTH(D[start:end])` for a range that occurs in the RFC recursion.
    fn subtree(&mut self, start: u64, end: u64) -> Result<Hash, LedgerError> {
        let n = end - start;
        if n >= TILE_WIDTH && n.is_power_of_two() && start.is_multiple_of(n) {
            let height = (n.trailing_zeros() - TILE_HEIGHT) as usize;
            // Complete aligned subtrees of tile height or more below the
            // tree size are always kept.
            let size = self.tree.size;
            return self
                .tree
                .tiles
                .node(height, start / n)
                .ok_or(LedgerError::Range(MerkleError::IndexOutOfRange {
                    index: start,
                    size,
                }));
        }
        if start / TILE_WIDTH == (end - 1) / TILE_WIDTH {
            return self.within_tile(start, end);
        }
        let k = split_point(n);
        Ok(node_hash(
            &self.subtree(start, start + k)?,
            &self.subtree(start + k, end)?,
        ))
    }

    /// `MTH(D[start:end])` for a non-empty range inside one tile.
    fn within_tile(&mut self, start: u64, end: u64) -> Result<Hash, LedgerError> {
        let tile = start / TILE_WIDTH;
        let base = tile * TILE_WIDTH;
        let (from, to) = ((start - base) as usize, (end - base) as usize);
        let tree = self.tree;
        if tile == tree.size / TILE_WIDTH {
            return Ok(range_root(&tree.tail[from..to]));
        }
        Ok(range_root(&self.tile(tile)?[from..to]))
    }

    fn tile(&mut self, tile: u64) -> Result<&Tile, LedgerError> {
        let at = match self.read.iter().position(|(t, _)| *t == tile) {
            Some(at) => at,
            None => {
                self.read.push((tile, self.source.tile(tile)?));
                self.read.len() - 1
            }
        };
        Ok(&self.read[at].1)
    }

    /// `PATH(m, D[start:end])`, appended in bottom-up order.
    fn path(
        &mut self,
        m: u64,
        start: u64,
        end: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), LedgerError> {
        let n = end - start;
        if n <= 1 {
            return Ok(());
        }
        let k = split_point(n);
        let sibling = if m < k {
            self.path(m, start, start + k, out)?;
            self.subtree(start + k, end)?
        } else {
            self.path(m - k, start + k, end, out)?;
            self.subtree(start, start + k)?
        };
        out.push(sibling);
        Ok(())
    }

    /// `SUBPROOF(m, D[start:end], b)`.
    fn subproof(
        &mut self,
        m: u64,
        start: u64,
        end: u64,
        b: bool,
        out: &mut Vec<Hash>,
    ) -> Result<(), LedgerError> {
        let n = end - start;
        if m == n {
            if !b {
                out.push(self.subtree(start, end)?);
            }
            return Ok(());
        }
        let k = split_point(n);
        let sibling = if m <= k {
            self.subproof(m, start, start + k, b, out)?;
            self.subtree(start + k, end)?
        } else {
            self.subproof(m - k, start + k, end, false, out)?;
            self.subtree(start, start + k)?
        };
        out.push(sibling);
        Ok(())
    }
}

/// `MTH` of a non-empty run of leaf hashes (RFC 9162 §2.1.1).
fn range_root(leaves: &[Hash]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = split_point(leaves.len() as u64) as usize;
    node_hash(&range_root(&leaves[..k]), &range_root(&leaves[k..]))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::merkle::{leaf_hash, verify_consistency, verify_inclusion, MerkleTree};
    use super::*;

    /// Every leaf hash in memory: the reference a tree's tiles are read from.
    struct Leaves(Vec<Hash>);

    impl LeafSource for Leaves {
        fn tile(&self, tile: u64) -> Result<Box<Tile>, LedgerError> {
            let start = (tile * TILE_WIDTH) as usize;
            let tile: Tile = self.0[start..start + TILE_WIDTH as usize]
                .try_into()
                .unwrap();
            Ok(Box::new(tile))
        }
        fn leaf(&self, index: u64) -> Result<Hash, LedgerError> {
            Ok(self.0[index as usize])
        }
    }

    fn trees(n: u64) -> (TiledTree, MerkleTree, Leaves) {
        let (mut tiled, mut full, mut leaves) = (TiledTree::new(), MerkleTree::new(), Vec::new());
        for i in 0..n {
            let h = leaf_hash(format!("entry {i}").as_bytes());
            tiled.push(h);
            full.push(h);
            leaves.push(h);
        }
        (tiled, full, Leaves(leaves))
    }

    /// The naive RFC 9162 §2.1.1 definition.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            _ => range_root(leaves),
        }
    }

    /// The naive RFC 9162 §2.1.3.1 `PATH(m, D[n])`.
    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() <= 1 {
            return Vec::new();
        }
        let k = split_point(leaves.len() as u64) as usize;
        let (mut path, sibling) = if m < k {
            (naive_path(m, &leaves[..k]), naive_root(&leaves[k..]))
        } else {
            (naive_path(m - k, &leaves[k..]), naive_root(&leaves[..k]))
        };
        path.push(sibling);
        path
    }

    /// The naive RFC 9162 §2.1.4.1 `SUBPROOF(m, D[n], b)`.
    fn naive_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![naive_root(leaves)]
            };
        }
        let k = split_point(n as u64) as usize;
        let (mut proof, sibling) = if m <= k {
            (naive_subproof(m, &leaves[..k], b), naive_root(&leaves[k..]))
        } else {
            (
                naive_subproof(m - k, &leaves[k..], false),
                naive_root(&leaves[..k]),
            )
        };
        proof.push(sibling);
        proof
    }

    /// Sizes around tile and double-tile boundaries, and one past 16 tiles.
    const SIZES: [u64; 9] = [255, 256, 257, 511, 512, 513, 1000, 1024, 4097];

    #[test]
    fn tiled_roots_match_the_naive_definition_at_every_size() {
        let (tiled, _, leaves) = trees(1100);
        for size in 0..=1100 {
            assert_eq!(
                tiled.root(size, &leaves).unwrap(),
                naive_root(&leaves.0[..size as usize]),
                "size {size}"
            );
        }
        assert!(matches!(
            tiled.root(1101, &leaves),
            Err(LedgerError::Range(MerkleError::SizeTooLarge {
                size: 1101,
                have: 1100
            }))
        ));
    }

    #[test]
    fn tiled_leaves_come_from_memory_or_the_source() {
        let (tiled, _, leaves) = trees(600);
        for i in 0..600 {
            assert_eq!(
                tiled.leaf(i, &leaves).unwrap(),
                leaves.0[i as usize],
                "leaf {i}"
            );
        }
        assert!(matches!(
            tiled.leaf(600, &leaves),
            Err(LedgerError::Range(MerkleError::IndexOutOfRange {
                index: 600,
                size: 600
            }))
        ));
    }

    #[test]
    fn tiled_every_inclusion_proof_around_tile_boundaries_is_the_rfc_path() {
        let (tiled, full, leaves) = trees(4097);
        for size in SIZES {
            let root = tiled.root(size, &leaves).unwrap();
            for index in 0..size {
                let proof = tiled.inclusion_proof(index, size, &leaves).unwrap();
                assert_eq!(
                    proof,
                    full.inclusion_proof(index, size).unwrap(),
                    "{index} in {size}"
                );
                let leaf = leaves.0[index as usize];
                assert!(
                    verify_inclusion(index, size, &leaf, &proof, &root),
                    "{index} in {size}"
                );
            }
            for index in (0..size).step_by(97) {
                let want = naive_path(index as usize, &leaves.0[..size as usize]);
                assert_eq!(tiled.inclusion_proof(index, size, &leaves).unwrap(), want);
            }
            assert!(tiled.inclusion_proof(size, size, &leaves).is_err());
        }
    }

    #[test]
    fn tiled_every_consistency_proof_around_tile_boundaries_is_the_rfc_subproof() {
        let (tiled, full, leaves) = trees(4097);
        for second in SIZES {
            let r2 = tiled.root(second, &leaves).unwrap();
            for first in 0..=second {
                let proof = tiled.consistency_proof(first, second, &leaves).unwrap();
                assert_eq!(proof, full.consistency_proof(first, second).unwrap());
                let r1 = tiled.root(first, &leaves).unwrap();
                assert!(
                    verify_consistency(first, second, &r1, &r2, &proof),
                    "{first}->{second}"
                );
            }
            for first in (1..second).step_by(89) {
                let want = naive_subproof(first as usize, &leaves.0[..second as usize], true);
                assert_eq!(
                    tiled.consistency_proof(first, second, &leaves).unwrap(),
                    want
                );
            }
        }
        assert!(tiled.consistency_proof(5, 4, &leaves).is_err());
        assert!(tiled.consistency_proof(1, 4098, &leaves).is_err());
    }

    #[test]
    fn tiled_memory_is_two_hashes_per_tile_plus_one_tile() {
        let (mut tree, n) = (TiledTree::new(), 100_000u64);
        for i in 0..n {
            tree.push(leaf_hash(&i.to_be_bytes()));
        }
        // 390 tiles and their 386 parents, and the 160 leaves of the last tile.
        assert_eq!(tree.memory_hashes(), 390 + 386 + 160);
        assert!(tree.memory_hashes() as u64 <= n / TILE_WIDTH * 2 + TILE_WIDTH);
    }
}
