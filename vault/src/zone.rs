//! Data zones (数据专区): what a zone is, who supervises it.
//!
//! A zone is sectoral (领域类: finance, transport, credit...), regional
//! (区域类: a district) or foundational (综合基础类: spatial, location...).
//! Each has one supervising authority, a regulator organization; a zone
//! with no clear owner starts under the Bureau and can be handed over
//! later ([`crate::catalog::Catalog::set_zone_supervisor`]). The zone key
//! is not part of this type: it lives only wrapped, in the catalog.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::ZoneId;

/// The kind of a zone, per clause 1 of the guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// 领域类: a sector such as finance, transport or credit.
    Sectoral,
    /// 区域类: a district.
    Regional,
    /// 综合基础类: foundational data such as spatial or location data.
    Foundational,
}

impl ZoneKind {
    /// Every kind.
    pub const ALL: [ZoneKind; 3] = [Self::Sectoral, Self::Regional, Self::Foundational];

    /// The stable name, as serialized and stored: `sectoral`, `regional`,
    /// `foundational`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sectoral => "sectoral",
            Self::Regional => "regional",
            Self::Foundational => "foundational",
        }
    }
}

impl fmt::Display for ZoneKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no zone kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown zone kind {0:?}; expected sectoral, regional or foundational")]
pub struct ZoneKindError(pub String);

impl FromStr for ZoneKind {
    type Err = ZoneKindError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ZoneKindError(s.chars().take(64).collect()))
    }
}

/// A data zone as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The zone's id.
    pub id: ZoneId,
    /// Display name.
    pub name: String,
    /// Sectoral, regional or foundational.
    pub kind: ZoneKind,
    /// The data domain: finance, transport, credit, spatial, location, or
    /// free text.
    pub domain: String,
    /// The supervising regulator organization.
    pub supervisor: String,
    /// When the zone was created (UTC).
    pub created_at: OffsetDateTime,
}

impl Zone {
    /// A new zone, created now.
    pub fn new(
        id: ZoneId,
        name: String,
        kind: ZoneKind,
        domain: String,
        supervisor: String,
    ) -> Zone {
        Zone {
            id,
            name,
            kind,
            domain,
            supervisor,
            created_at: crate::dataset::now_utc_seconds(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in ZoneKind::ALL {
            assert_eq!(k.to_string().parse::<ZoneKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
        }
        assert_eq!("Sectoral".parse::<ZoneKind>(), Ok(ZoneKind::Sectoral));
        let err = "sector".parse::<ZoneKind>().unwrap_err();
        assert!(err.to_string().contains("\"sector\""), "{err}");
    }

    #[test]
    fn new_zone_is_created_now() {
        let id: ZoneId = "z1".parse().unwrap();
        let z = Zone::new(id, "n".into(), ZoneKind::Regional, "d".into(), "s".into());
        let age = OffsetDateTime::now_utc() - z.created_at;
        assert!(age.whole_seconds() < 5);
    }
}
