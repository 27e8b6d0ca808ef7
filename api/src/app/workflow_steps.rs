//! What the quality, feedback and assessment routes share: a refused
//! workflow step as its fixed API error, fresh record ids, and the
//! parties a caller can be to a dataset's zone.

use vault::catalog::Catalog;
use vault::governance::refusal::StepRefused;
use vault::zone::Zone;

use super::zones::zone_operator;
use crate::error::ApiError;
use crate::identity::{Identity, Role};

/// 403 for the wrong party, 409 for the wrong state, 400 for bad input;
/// the text of the first two goes to the ledger only.
pub fn step_error(e: StepRefused) -> ApiError {
    match e {
        StepRefused::NotAllowed { .. } => ApiError::Forbidden {
            reason: e.to_string(),
        },
        StepRefused::WrongState { .. } => ApiError::Conflict {
            reason: e.to_string(),
        },
        StepRefused::Invalid { field, problem } => ApiError::bad_request(field, problem),
    }
}

/// A fresh id `prefix-<16 hex>`.
pub fn fresh_id(prefix: &str) -> Result<String, ApiError> {
    vault::governance::refusal::new_id(prefix).map_err(ApiError::internal)
}

/// Whether `who` is the regulator supervising `zone`.
pub fn is_zone_regulator(who: &Identity, zone: &Zone) -> bool {
    who.role == Role::Regulator && zone.supervisor == who.org
}

/// Whether `who` is an operator of the organization running `zone`.
pub fn is_zone_operator(catalog: &Catalog, who: &Identity, zone: &Zone) -> Result<bool, ApiError> {
    Ok(who.role == Role::Operator
        && zone_operator(catalog, &zone.id)?.as_deref() == Some(who.org.as_str()))
}

/// The zone `id`; a dangling reference is a 500.
pub fn zone_of(catalog: &Catalog, id: &vault::ids::ZoneId) -> Result<Zone, ApiError> {
    catalog
        .zone(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal(format!("zone {id} is missing")))
}
