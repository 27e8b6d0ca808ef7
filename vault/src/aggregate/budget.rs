//! The per-grant ε budget, kept in catalog meta as `dp-spent:<grant>`.

use super::AggregateError;
use crate::catalog::Catalog;

/// The catalog meta key of a grant's spent ε.
fn spent_key(grant: &str) -> String {
    format!("dp-spent:{grant}")
}

/// The ε grant `grant` has spent so far.
pub fn epsilon_spent(catalog: &Catalog, grant: &str) -> Result<f64, AggregateError> {
    match catalog.meta(&spent_key(grant))? {
        None => Ok(0.0),
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(AggregateError::BudgetCorrupt {
                grant: grant.to_owned(),
                value: v,
            }),
        },
    }
}

/// Charges `epsilon` to `grant` if its `budget` covers it, and returns the
/// new total. Call with the catalog locked and before computing, so two
/// requests can never overspend and a failed computation is still charged
/// (fail closed).
pub fn spend_epsilon(
    catalog: &mut Catalog,
    grant: &str,
    epsilon: f64,
    budget: f64,
) -> Result<f64, AggregateError> {
    let spent = epsilon_spent(catalog, grant)?;
    let total = spent + epsilon;
    // NaN or over budget both refuse.
    if total
        .partial_cmp(&budget)
        .is_none_or(|o| o == std::cmp::Ordering::Greater)
    {
        return Err(AggregateError::BudgetExhausted {
            grant: grant.to_owned(),
            spent,
            requested: epsilon,
            budget,
        });
    }
    catalog.put_meta(&spent_key(grant), &total.to_string())?;
    Ok(total)
}
