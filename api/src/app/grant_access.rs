//! The checks extracts and aggregates share once a grant has been found and
//! admits the caller: the caller's organization must still be a partner
//! with data access (and product authorization for aggregates), the
//! grant's data-use filing must still be acknowledged, in its period and of
//! a method that covers the use, the grant's dataset must be accessible
//! (not destroyed, not past retention) and confirmed, and its file is
//! opened with its key.

use vault::catalog::Catalog;
use vault::dataset::{Dataset, DatasetState};
use vault::dataset_file::DatasetFile;
use vault::desensitize::Tier;
use vault::governance::filing::Use;
use vault::grant::Grant;

use super::AppState;
use crate::error::ApiError;
use crate::identity::Identity;

/// Why a grant cannot be used now.
pub enum GrantDenied {
    /// A 403 whose reason goes to the ledger entry, never the body.
    Reason(String),
    /// Any other refusal or failure, as its fixed response.
    Api(ApiError),
}

impl From<ApiError> for GrantDenied {
    fn from(err: ApiError) -> Self {
        GrantDenied::Api(err)
    }
}

/// The tier of the caller's organization, which must be a partner with
/// data access now (not only when the grant was made).
pub fn partner_tier(catalog: &Catalog, who: &Identity) -> Result<Tier, GrantDenied> {
    let partner = catalog.partner(&who.org).map_err(ApiError::internal)?;
    match partner {
        Some(p) if p.data_access => Ok(p.tier),
        Some(_) => Err(GrantDenied::Reason(format!(
            "partner {} has no data access",
            who.org
        ))),
        None => Err(GrantDenied::Reason(format!("{} is not a partner", who.org))),
    }
}

/// Refuses `use_` under `grant` unless its filing (acknowledged, in its
/// period) covers it: a grant made before filings existed has none.
pub fn filing_allows(catalog: &Catalog, grant: &Grant, use_: Use) -> Result<(), GrantDenied> {
    let Some(id) = grant.filing.as_deref() else {
        let reason = format!("grant {} is under no data-use filing", grant.id);
        return Err(GrantDenied::Reason(reason));
    };
    let filing = catalog
        .filing(id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| GrantDenied::Reason(format!("filing {id} of the grant is gone")))?;
    match filing.use_refusal(use_, time::OffsetDateTime::now_utc()) {
        Some(reason) => Err(GrantDenied::Reason(reason)),
        None => Ok(()),
    }
}

/// Refuses an aggregate (a derived data product) to a partner without
/// product authorization.
pub fn product_authorized(catalog: &Catalog, who: &Identity) -> Result<(), GrantDenied> {
    let partner = catalog.partner(&who.org).map_err(ApiError::internal)?;
    if partner.is_some_and(|p| p.product_authorization) {
        return Ok(());
    }
    Err(GrantDenied::Reason(format!(
        "partner {} has no product authorization",
        who.org
    )))
}

/// The grant's dataset, if it is accessible and its schema confirmed. A
/// destroyed dataset is 410 naming its certificate; one past retention 409.
pub fn usable_dataset(catalog: &mut Catalog, grant: &Grant) -> Result<Dataset, GrantDenied> {
    let dataset = catalog
        .dataset(&grant.dataset)
        .map_err(ApiError::internal)?
        .ok_or_else(|| GrantDenied::Reason(format!("dataset {} is gone", grant.dataset)))?;
    super::destructions::ensure_accessible(catalog, &dataset)?;
    if dataset.state != DatasetState::Confirmed || !dataset.schema_confirmed {
        let reason = format!("dataset {} is {}", dataset.id, dataset.state);
        return Err(GrantDenied::Reason(reason));
    }
    Ok(dataset)
}

/// Opens the dataset's encrypted file with its unwrapped key.
pub fn open_dataset(
    state: &AppState,
    catalog: &Catalog,
    dataset: &Dataset,
) -> Result<DatasetFile, ApiError> {
    open_dataset_readers(state, catalog, dataset, 1)
}

/// Opens the dataset's encrypted file on `readers` connections, for an
/// extract that reads it on as many threads.
pub fn open_dataset_readers(
    state: &AppState,
    catalog: &Catalog,
    dataset: &Dataset,
    readers: usize,
) -> Result<DatasetFile, ApiError> {
    let zone_wrapped = catalog
        .zone_wrapped_key(&dataset.zone)
        .map_err(ApiError::internal)?;
    let wrapped = catalog
        .dataset_wrapped_key(&dataset.id)
        .map_err(ApiError::internal)?;
    let key = state
        .keys
        .dataset_key(&zone_wrapped, &dataset.zone, &wrapped, &dataset.id)
        .map_err(ApiError::internal)?;
    let path = state.zones.datadir.dataset_path(&dataset.id);
    DatasetFile::open_readers(&path, &key, readers).map_err(ApiError::internal)
}
