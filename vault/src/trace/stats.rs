//! The statistics of leak tracing: exact binomial tails in log space, so
//! p-values far below `f64`'s smallest number still rank.
//!
//! Every fingerprint channel is a count of *hits* among *checks*, each
//! check hitting with a known probability `q` when the file was not made
//! from the candidate extract (the null hypothesis) and always when it
//! was. The p-value of `hits` is `P(Binomial(checks, q) >= hits)`.

use serde::Serialize;

/// Terms this far (natural log) below the running sum no longer matter.
const NEGLIGIBLE: f64 = 60.0;

/// The outcome of one channel's test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evidence {
    /// Observations tested.
    pub checks: u64,
    /// Observations that matched the candidate.
    pub hits: u64,
    /// Probability of one hit under the null hypothesis.
    pub null_hit_probability: f64,
    /// log10 of the p-value.
    pub log10_p: f64,
}

impl Evidence {
    /// The evidence of `hits` among `checks` at null probability `q`.
    pub fn new(checks: u64, hits: u64, q: f64) -> Self {
        Self {
            checks,
            hits,
            null_hit_probability: q,
            log10_p: log10_binomial_tail(checks, hits, q),
        }
    }

    /// The share of checks that hit (0 for no checks).
    pub fn score(&self) -> f64 {
        if self.checks == 0 {
            0.0
        } else {
            self.hits as f64 / self.checks as f64
        }
    }
}

/// `log10 P(X >= m)` for `X ~ Binomial(n, q)`; `0` when `m` is 0,
/// `-inf` when `m > n` or `q` is 0 and `m > 0`.
pub fn log10_binomial_tail(n: u64, m: u64, q: f64) -> f64 {
    if m == 0 || q >= 1.0 {
        return 0.0;
    }
    if m > n || q.is_nan() || q <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let (ln_q, ln_not_q) = (q.ln(), (-q).ln_1p());
    // ln of the first term: ln C(n, m) + m ln q + (n - m) ln(1 - q).
    let ln_choose: f64 = (0..m)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum();
    let mut term = ln_choose + m as f64 * ln_q + (n - m) as f64 * ln_not_q;
    let mut sum = term;
    let mode = (n + 1) as f64 * q;
    for k in m..n {
        term += ((n - k) as f64).ln() - ((k + 1) as f64).ln() + ln_q - ln_not_q;
        sum = log_add(sum, term);
        if k as f64 > mode && term < sum - NEGLIGIBLE {
            break;
        }
    }
    (sum / std::f64::consts::LN_10).min(0.0)
}

/// `ln(e^a + e^b)` without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a >= b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        hi
    } else {
        hi + (lo - hi).exp().ln_1p()
    }
}

/// The smallest of several p-values (log10), corrected for having looked
/// at `tests` of them (Bonferroni), capped at 1.
pub fn bonferroni(log10_ps: impl IntoIterator<Item = f64>, tests: usize) -> f64 {
    let best = log10_ps.into_iter().fold(0.0f64, f64::min);
    if tests <= 1 {
        best
    } else {
        (best + (tests as f64).log10()).min(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn binomial_tails_match_direct_sums() {
        // P(Bin(10, 1/2) >= 8) = (45 + 10 + 1) / 1024.
        assert!(close(
            log10_binomial_tail(10, 8, 0.5),
            (56.0f64 / 1024.0).log10()
        ));
        // P(Bin(3, 0.25) >= 1) = 1 - 0.75^3.
        let want = (1.0 - 0.75f64.powi(3)).log10();
        assert!(close(log10_binomial_tail(3, 1, 0.25), want));
        // All of n fair coins: 2^-n, far below f64's range for n = 5000.
        assert!(close(
            log10_binomial_tail(5000, 5000, 0.5),
            -5000.0 * 2f64.log10()
        ));
        assert_eq!(log10_binomial_tail(7, 0, 0.1), 0.0);
        assert_eq!(log10_binomial_tail(7, 8, 0.1), f64::NEG_INFINITY);
        assert_eq!(log10_binomial_tail(7, 1, 0.0), f64::NEG_INFINITY);
    }

    #[test]
    fn tails_are_monotone_and_tiny_q_is_stable() {
        let mut last = 0.0;
        for m in 0..=40 {
            let p = log10_binomial_tail(40, m, 0.5);
            assert!(p <= last + 1e-12, "{m}");
            last = p;
        }
        // One hit among a million checks at q = 1e-15: about 1e-9.
        let p = log10_binomial_tail(1_000_000, 1, 1e-15);
        assert!((p + 9.0).abs() < 1e-3, "{p}");
        // Half the checks hitting at q = 1/2 is not evidence.
        assert!(log10_binomial_tail(1000, 500, 0.5) > -0.5);
    }

    #[test]
    fn bonferroni_multiplies_and_caps() {
        assert!(close(bonferroni([-5.0, -2.0], 10), -4.0));
        assert_eq!(bonferroni([-0.5], 100), 0.0);
        assert_eq!(bonferroni(Vec::<f64>::new(), 3), 0.0);
        let e = Evidence::new(20, 20, 0.5);
        assert!(close(e.log10_p, -20.0 * 2f64.log10()));
        assert_eq!(e.score(), 1.0);
    }
}
