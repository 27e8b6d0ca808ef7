//! k-anonymity over quasi-identifiers, small-cell-suppressed aggregates,
//! and discrete Laplace noise for differentially private counts
//! (GB/T 37964-2019 models).
//!
//! Everything here works on values *after* desensitization: equivalence
//! classes are formed from the generalized output, which is what a
//! recipient sees.

use std::collections::{BTreeMap, HashMap};

/// Most steps a quasi-identifier is generalized beyond the policy to reach
/// k-anonymity (ranges, bands and cells double per step: up to 16×).
pub const MAX_GENERALIZATION: u32 = 4;

/// The share of an extract's rows that may be suppressed rather than
/// generalizing every row further (Samarati's suppression threshold).
pub const MAX_SUPPRESSED_SHARE: f64 = 0.01;

/// The generalization level of an extract of `total` rows, given its
/// classes at each level (index = level): the lowest whose classes under
/// `k` hold at most [`MAX_SUPPRESSED_SHARE`] of the rows, else the level
/// that suppresses fewest (the lowest of equals).
pub fn choose_level(levels: &[EquivalenceClasses], k: usize, total: u64) -> u32 {
    let below: Vec<usize> = levels.iter().map(|c| c.rows_below(k)).collect();
    let pick = below
        .iter()
        .position(|&n| n <= allowed_below(total))
        .unwrap_or_else(|| {
            let fewest = below.iter().copied().min().unwrap_or(0);
            below.iter().position(|&n| n == fewest).unwrap_or(0)
        });
    u32::try_from(pick).unwrap_or(0)
}

/// Whether `classes` (of `total` rows) suppress few enough rows under `k`
/// to be chosen without generalizing further.
pub fn suffices(classes: &EquivalenceClasses, k: usize, total: u64) -> bool {
    classes.rows_below(k) <= allowed_below(total)
}

/// Rows of `total` that may sit in classes under k.
fn allowed_below(total: u64) -> usize {
    (total as f64 * MAX_SUPPRESSED_SHARE).floor() as usize
}

/// Counts the equivalence classes of quasi-identifier tuples, one row at a
/// time, so a streamed extract can be checked in a first pass and filtered
/// in a second without holding rows in memory.
#[derive(Debug, Clone, Default)]
pub struct EquivalenceClasses {
    quasi_identifiers: Vec<usize>,
    /// Class key (see [`EquivalenceClasses::key_into`]) → rows.
    counts: HashMap<String, usize>,
    /// Reused for the key of each observed row.
    scratch: String,
}

impl EquivalenceClasses {
    /// Classes over the columns at `quasi_identifiers` (row indices).
    pub fn new(quasi_identifiers: &[usize]) -> Self {
        Self {
            quasi_identifiers: quasi_identifiers.to_vec(),
            counts: HashMap::new(),
            scratch: String::new(),
        }
    }

    /// Writes the class key of `row` into `key` (see [`key_at`]).
    fn key_into(&self, row: &[String], key: &mut String) {
        key_at(row, &self.quasi_identifiers, key);
    }

    /// Counts one row; allocates only for a class not seen before.
    pub fn observe(&mut self, row: &[String]) {
        let mut key = std::mem::take(&mut self.scratch);
        self.key_into(row, &mut key);
        match self.counts.get_mut(key.as_str()) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(key.clone(), 1);
            }
        }
        self.scratch = key;
    }

    /// Adds the counts of `other` (classes over the same columns), as if
    /// its rows had been observed here.
    pub fn merge(&mut self, other: EquivalenceClasses) {
        for (key, n) in other.counts {
            *self.counts.entry(key).or_default() += n;
        }
    }

    /// The size of the smallest class: the k the observed rows achieve
    /// (0 when no row was observed).
    pub fn k(&self) -> usize {
        self.counts.values().copied().min().unwrap_or(0)
    }

    /// Whether `row` lies in a class of at least `k` rows.
    pub fn admits(&self, row: &[String], k: usize) -> bool {
        self.admits_at(row, &self.quasi_identifiers, k, &mut String::new())
    }

    /// Whether the cells of `row` at `at` (one per quasi-identifier, in
    /// order) form a class of at least `k` rows; the key is built in
    /// `scratch`, reused row to row. For a wider row than was counted.
    pub fn admits_at(&self, row: &[String], at: &[usize], k: usize, scratch: &mut String) -> bool {
        key_at(row, at, scratch);
        self.counts.get(scratch.as_str()).is_some_and(|&n| n >= k)
    }

    /// How many observed rows lie in classes smaller than `k`.
    pub fn rows_below(&self, k: usize) -> usize {
        self.counts.values().filter(|&&n| n < k).sum()
    }
}

/// Writes into `key` the class key of the cells of `row` at `at`: each
/// cell prefixed by its length, so distinct tuples never share a key.
fn key_at(row: &[String], at: &[usize], key: &mut String) {
    use std::fmt::Write as _;
    key.clear();
    for &i in at {
        let cell = row.get(i).map_or("", String::as_str);
        // Writing to a String cannot fail.
        let _ = write!(key, "{}:", cell.len());
        key.push_str(cell);
    }
}

/// The k of a set of rows that hold only quasi-identifier values (after
/// generalization): the size of the smallest equivalence class, 0 for no
/// rows.
pub fn k_anonymity(rows: impl IntoIterator<Item = Vec<String>>) -> usize {
    let mut counts: HashMap<Vec<String>, usize> = HashMap::new();
    for row in rows {
        *counts.entry(row).or_insert(0) += 1;
    }
    counts.values().copied().min().unwrap_or(0)
}

/// Drops the rows whose quasi-identifier tuple (columns `quasi_identifiers`)
/// occurs fewer than `k` times. Returns the kept rows, in order, and the
/// number suppressed; the kept rows are k-anonymous.
pub fn suppress_small_classes(
    rows: Vec<Vec<String>>,
    quasi_identifiers: &[usize],
    k: usize,
) -> (Vec<Vec<String>>, usize) {
    let mut classes = EquivalenceClasses::new(quasi_identifiers);
    rows.iter().for_each(|r| classes.observe(r));
    let before = rows.len();
    let kept: Vec<Vec<String>> = rows.into_iter().filter(|r| classes.admits(r, k)).collect();
    let suppressed = before - kept.len();
    (kept, suppressed)
}

/// One cell of an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The group-by values.
    pub key: Vec<String>,
    /// Rows in the group.
    pub count: usize,
    /// Sum of the measure over the rows that had one; `None` if none had.
    pub sum: Option<f64>,
}

/// An aggregate after small-cell suppression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aggregate {
    /// The groups of at least k rows, ordered by key.
    pub groups: Vec<Group>,
    /// How many groups were dropped for having fewer than k rows.
    pub suppressed_groups: usize,
}

/// Groups rows by their group-by values, counts them and sums the measure,
/// then drops every group of fewer than `k` rows (small-cell suppression).
/// The group-by values should already be desensitized (generalized), since
/// they are released as keys.
pub fn aggregate(
    rows: impl IntoIterator<Item = (Vec<String>, Option<f64>)>,
    k: usize,
) -> Aggregate {
    let mut cells: BTreeMap<Vec<String>, (usize, Option<f64>)> = BTreeMap::new();
    for (key, measure) in rows {
        let cell = cells.entry(key).or_insert((0, None));
        cell.0 += 1;
        if let Some(m) = measure.filter(|m| m.is_finite()) {
            cell.1 = Some(cell.1.unwrap_or(0.0) + m);
        }
    }
    let before = cells.len();
    let groups: Vec<Group> = cells
        .into_iter()
        .filter(|(_, (count, _))| *count >= k)
        .map(|(key, (count, sum))| Group { key, count, sum })
        .collect();
    Aggregate {
        suppressed_groups: before - groups.len(),
        groups,
    }
}

/// A source of uniform 64-bit values for noise.
pub trait UniformSource {
    /// The next uniformly distributed value.
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: a reproducible source for tests and replays only. Its
/// outputs reveal its state, so released noise must come from a
/// CSPRNG-backed [`UniformSource`] instead.
#[derive(Debug, Clone)]
pub struct SeededSource(u64);

impl SeededSource {
    /// A source starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl UniformSource for SeededSource {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A uniform value in the open interval (0, 1), from 53 random bits.
fn open_unit(source: &mut impl UniformSource) -> f64 {
    ((source.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A geometric value on {0, 1, ...} with P(n) = (1 - q) qⁿ.
fn geometric(q: f64, source: &mut impl UniformSource) -> i64 {
    (open_unit(source).ln() / q.ln()).floor() as i64
}

/// Discrete Laplace noise with scale 1/ε (the difference of two geometric
/// values with q = e^-ε): added to a count (sensitivity 1) it gives
/// ε-differential privacy. `None` if ε is not positive and finite.
pub fn discrete_laplace(epsilon: f64, source: &mut impl UniformSource) -> Option<i64> {
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return None;
    }
    let q = (-epsilon).exp();
    Some(geometric(q, source) - geometric(q, source))
}

/// `count` plus discrete Laplace noise at ε, clamped at zero.
pub fn noisy_count(count: usize, epsilon: f64, source: &mut impl UniformSource) -> Option<u64> {
    let noise = discrete_laplace(epsilon, source)?;
    let noisy = i64::try_from(count)
        .unwrap_or(i64::MAX)
        .saturating_add(noise);
    Some(u64::try_from(noisy).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(data: &[&[&str]]) -> Vec<Vec<String>> {
        data.iter()
            .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn k_is_the_smallest_class() {
        let r = rows(&[
            &["海淀区", "1990"],
            &["海淀区", "1990"],
            &["朝阳区", "1990"],
        ]);
        assert_eq!(k_anonymity(r.clone()), 1);
        assert_eq!(k_anonymity(r[..2].to_vec()), 2);
        assert_eq!(k_anonymity(Vec::new()), 0);
    }

    #[test]
    fn small_classes_are_suppressed_until_k_holds() {
        let r = rows(&[
            &["1", "海淀区", "x"],
            &["2", "海淀区", "y"],
            &["3", "朝阳区", "z"],
            &["4", "海淀区", "w"],
        ]);
        let (kept, suppressed) = suppress_small_classes(r, &[1], 2);
        assert_eq!(suppressed, 1);
        assert_eq!(
            kept.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
            ["1", "2", "4"]
        );
        let qi: Vec<Vec<String>> = kept.iter().map(|r| vec![r[1].clone()]).collect();
        assert!(k_anonymity(qi) >= 2);

        let mut classes = EquivalenceClasses::new(&[1]);
        rows(&[&["a", "p"], &["b", "p"], &["c", "q"]])
            .iter()
            .for_each(|r| classes.observe(r));
        assert_eq!((classes.k(), classes.rows_below(2)), (1, 1));

        // Merging counts as if the other's rows were observed here.
        let mut more = EquivalenceClasses::new(&[1]);
        rows(&[&["d", "q"], &["e", "r"]])
            .iter()
            .for_each(|r| more.observe(r));
        classes.merge(more);
        assert_eq!((classes.k(), classes.rows_below(2)), (1, 1));
        assert!(classes.admits(&["x".into(), "q".into()], 2));
        assert!(!classes.admits(&["x".into(), "r".into()], 2));
    }

    #[test]
    fn the_first_level_under_the_threshold_wins() {
        let classes = |sizes: &[usize]| {
            let mut c = EquivalenceClasses::new(&[0]);
            for (i, &n) in sizes.iter().enumerate() {
                (0..n).for_each(|_| c.observe(&[i.to_string()]));
            }
            c
        };
        // 200 rows: level 0 leaves 3 in small classes (> 1%), level 1 two.
        let levels = [classes(&[197, 3]), classes(&[198, 2]), classes(&[200])];
        assert_eq!(choose_level(&levels, 5, 200), 1);
        // Nothing reaches the threshold: the level suppressing fewest.
        let levels = [classes(&[1, 1, 1]), classes(&[2, 1]), classes(&[2, 1])];
        assert_eq!(choose_level(&levels, 2, 3), 1);
        assert_eq!(choose_level(&[classes(&[10])], 5, 10), 0);
    }

    #[test]
    fn aggregates_drop_small_cells() {
        let data = [
            ("海淀区", 10.0),
            ("海淀区", 5.0),
            ("海淀区", 1.0),
            ("朝阳区", 7.0),
        ];
        let input = data.iter().map(|(k, v)| (vec![(*k).to_owned()], Some(*v)));
        let agg = aggregate(input, 3);
        assert_eq!(agg.suppressed_groups, 1);
        assert_eq!(
            agg.groups,
            [Group {
                key: vec!["海淀区".into()],
                count: 3,
                sum: Some(16.0)
            }]
        );
        let counts_only = aggregate([(vec!["a".into()], None)], 1);
        assert_eq!(counts_only.groups[0].sum, None);
    }

    #[test]
    fn discrete_laplace_is_centred_with_the_right_spread() {
        let mut src = SeededSource::new(1);
        let n = 20_000;
        let draws: Vec<i64> = (0..n)
            .map(|_| discrete_laplace(0.5, &mut src).unwrap())
            .collect();
        let mean = draws.iter().sum::<i64>() as f64 / n as f64;
        let var = draws
            .iter()
            .map(|&d| (d as f64 - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        // Variance of the two-sided geometric: 2q / (1 - q)^2 ≈ 7.92 at ε = 0.5.
        let q = (-0.5f64).exp();
        let expected = 2.0 * q / (1.0 - q).powi(2);
        assert!(mean.abs() < 0.1, "{mean}");
        assert!(
            (var - expected).abs() / expected < 0.05,
            "{var} vs {expected}"
        );
        assert_eq!(discrete_laplace(0.0, &mut src), None);
        let mut a = SeededSource::new(9);
        let mut b = SeededSource::new(9);
        assert_eq!(noisy_count(100, 1.0, &mut a), noisy_count(100, 1.0, &mut b));
        assert_eq!(
            noisy_count(0, 0.01, &mut a).map(|c| c < u64::MAX),
            Some(true)
        );
    }
}
