//! Medians, percentiles and per-pair ratios. Pure arithmetic: the tests
//! below never time anything.

/// The median of `values` (mean of the middle two for an even count);
/// `NaN` for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The `q`-quantile (0..=1) of `sorted` by nearest rank; `NaN` for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `ours[i] / baseline[i]` for each pair.
pub fn pair_ratios(ours: &[f64], baseline: &[f64]) -> Vec<f64> {
    ours.iter()
        .zip(baseline)
        .map(|(o, b)| if *b > 0.0 { o / b } else { f64::NAN })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 0.99), 7.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn ratios_pair_up_and_never_divide_by_zero() {
        let r = pair_ratios(&[8.0, 9.0, 5.0], &[10.0, 10.0, 0.0]);
        assert_eq!(&r[..2], &[0.8, 0.9]);
        assert!(r[2].is_nan());
        assert!((median(&r) - 0.85).abs() < 1e-12);
    }
}
