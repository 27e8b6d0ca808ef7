//! Shamir's secret sharing over GF(2^8), byte by byte.
//!
//! The field is GF(2)[x] / (x^8 + x^4 + x^3 + x + 1) (the AES polynomial).
//! Multiplication is a fixed eight-round shift-and-add with masks instead of
//! branches or log tables, so its timing does not depend on the operands;
//! inversion is a^254 by square-and-multiply with a public exponent. Share
//! `i` is the polynomial evaluated at x = i, for i in 1..=n; the secret is
//! the value at x = 0.

use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Length of the shared secret, in bytes.
pub(crate) const SECRET_LEN: usize = 32;

/// Multiply in GF(2^8) without data-dependent branches or table lookups.
pub(crate) fn gf_mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    for _ in 0..8 {
        product ^= a & 0u8.wrapping_sub(b & 1);
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (carry & 0x1b);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse in GF(2^8) as a^254 (maps 0 to 0).
pub(crate) fn gf_inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: a^2 · a^4 · … · a^128.
    let mut square = gf_mul(a, a);
    let mut result = 1u8;
    for _ in 0..7 {
        result = gf_mul(result, square);
        square = gf_mul(square, square);
    }
    result
}

/// The y values of shares x = 1..=n of a random polynomial of degree k-1
/// whose constant term is `secret`. The caller validates n and k.
pub(crate) fn split(
    secret: &[u8; SECRET_LEN],
    n: u8,
    k: u8,
) -> Result<Vec<Zeroizing<[u8; SECRET_LEN]>>, ring::error::Unspecified> {
    // coefficients[c][b]: coefficient of x^(c+1) for secret byte b.
    let higher = usize::from(k.saturating_sub(1));
    let mut coefficients = Zeroizing::new(vec![[0u8; SECRET_LEN]; higher]);
    let rng = SystemRandom::new();
    for c in coefficients.iter_mut() {
        rng.fill(c)?;
    }
    let shares = (1..=n)
        .map(|x| {
            let mut y = Zeroizing::new([0u8; SECRET_LEN]);
            for (b, out) in y.iter_mut().enumerate() {
                // Horner, from the highest coefficient down to the secret.
                let mut acc = 0u8;
                for c in coefficients.iter().rev() {
                    acc = gf_mul(acc, x) ^ c[b];
                }
                *out = gf_mul(acc, x) ^ secret[b];
            }
            y
        })
        .collect();
    Ok(shares)
}

/// The polynomial through `points` evaluated at x = 0 (Lagrange). The
/// caller guarantees distinct, non-zero x values.
pub(crate) fn interpolate_at_zero(
    points: &[(u8, &[u8; SECRET_LEN])],
) -> Zeroizing<[u8; SECRET_LEN]> {
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    for (i, &(xi, yi)) in points.iter().enumerate() {
        // l_i(0) = Π_{j≠i} x_j / (x_j − x_i); subtraction is XOR here.
        let mut basis = 1u8;
        for (j, &(xj, _)) in points.iter().enumerate() {
            if i != j {
                basis = gf_mul(basis, gf_mul(xj, gf_inv(xj ^ xi)));
            }
        }
        for (s, &y) in secret.iter_mut().zip(yi.iter()) {
            *s ^= gf_mul(basis, y);
        }
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference multiply: plain carry-less multiply then reduction.
    fn slow_mul(a: u8, b: u8) -> u8 {
        let mut wide: u16 = 0;
        for bit in 0..8 {
            if b >> bit & 1 == 1 {
                wide ^= u16::from(a) << bit;
            }
        }
        for bit in (8..16).rev() {
            if wide >> bit & 1 == 1 {
                wide ^= 0x11b << (bit - 8);
            }
        }
        wide as u8
    }

    #[test]
    fn field_arithmetic() {
        // FIPS-197 §4.2 examples.
        assert_eq!(gf_mul(0x57, 0x83), 0xc1);
        assert_eq!(gf_mul(0x57, 0x13), 0xfe);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(gf_mul(a, b), slow_mul(a, b));
            }
            if a != 0 {
                assert_eq!(gf_mul(a, gf_inv(a)), 1, "inverse of {a}");
            }
        }
        assert_eq!(gf_inv(0), 0);
    }

    #[test]
    fn split_then_interpolate() {
        let secret = [0x42u8; SECRET_LEN];
        let ys = split(&secret, 4, 2).unwrap_or_else(|_| panic!("rng"));
        assert_eq!(ys.len(), 4);
        let points: Vec<(u8, &[u8; SECRET_LEN])> = vec![(2, &*ys[1]), (4, &*ys[3])];
        assert_eq!(*interpolate_at_zero(&points), secret);
        // One share alone of a 2-threshold split is not the secret.
        assert_ne!(*ys[0], secret);
    }

    #[test]
    fn one_of_one_is_the_secret() {
        let secret = [7u8; SECRET_LEN];
        let ys = split(&secret, 1, 1).unwrap_or_else(|_| panic!("rng"));
        assert_eq!(*ys[0], secret);
        assert_eq!(*interpolate_at_zero(&[(1, &*ys[0])]), secret);
    }
}
