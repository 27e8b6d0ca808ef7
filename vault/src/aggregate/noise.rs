//! Count noise: the mechanisms, and the CSPRNG-backed source released
//! noise must come from.

use ring::rand::{SecureRandom, SystemRandom};

use super::{AggregatePlan, Mechanism};
use crate::desensitize::kanon::{noisy_count, UniformSource};

/// Adds count noise (the plan admits noise only with count metrics).
pub(super) fn noisy<S: UniformSource>(
    v: Option<f64>,
    plan: &AggregatePlan,
    source: &mut S,
) -> Option<f64> {
    let (Some(count), Some(noise)) = (v, plan.noise) else {
        return v;
    };
    let epsilon = noise.epsilon / plan.metrics.len() as f64;
    let count = count as usize;
    match noise.mechanism {
        Mechanism::DiscreteLaplace => noisy_count(count, epsilon, source).map(|c| c as f64),
        Mechanism::Laplace => Some(
            (count as f64 + laplace(1.0 / epsilon, source))
                .round()
                .max(0.0),
        ),
    }
}

/// Continuous Laplace noise of scale `b`, by inverse transform.
fn laplace<S: UniformSource>(b: f64, source: &mut S) -> f64 {
    let u = ((source.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64 - 0.5;
    -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

/// Noise from the operating system's CSPRNG (ring's `SystemRandom`),
/// drawn in blocks. A failed draw marks the source failed and [`run`]
/// releases nothing.
pub struct SystemSource {
    rng: SystemRandom,
    block: [u8; 512],
    used: usize,
    failed: bool,
}

impl SystemSource {
    /// A source with an empty block (filled on first use).
    pub fn new() -> Self {
        Self {
            rng: SystemRandom::new(),
            block: [0; 512],
            used: 512,
            failed: false,
        }
    }

    /// Whether any draw failed (its values must not be released).
    pub fn failed(&self) -> bool {
        self.failed
    }
}

impl Default for SystemSource {
    fn default() -> Self {
        Self::new()
    }
}

impl UniformSource for SystemSource {
    fn next_u64(&mut self) -> u64 {
        if self.used + 8 > self.block.len() {
            self.failed |= self.rng.fill(&mut self.block).is_err();
            self.used = 0;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.block[self.used..self.used + 8]);
        self.used += 8;
        u64::from_le_bytes(word)
    }
}
