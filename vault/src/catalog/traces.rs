//! What leak tracing and the policy engine keep in the catalog: each
//! extract's token sketch (`crate::trace`), and the operator's policy
//! versions (TOML text, numbered from 2; version 1 is the built-in default).
//!
//! Sketches hold pseudonym tokens only (already released values), and the
//! catalog is encrypted at rest like everything else in it.

use rusqlite::{params, OptionalExtension};

use super::{now_rfc3339, sql, Catalog, CatalogError};

/// What tracing needs of one extract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    /// The extract's id.
    pub id: String,
    /// Its grant.
    pub grant: String,
    /// Its recipient.
    pub recipient: String,
    /// Its signed manifest note.
    pub manifest: String,
    /// Its stored token sketch (`crate::trace::TokenSketch::to_bytes`).
    pub sketch: Option<Vec<u8>>,
}

/// One stored policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// Its number (2, 3, …).
    pub version: u64,
    /// The TOML as the operator sent it.
    pub toml: String,
    /// SHA-256 of the TOML, lowercase hex.
    pub sha256: String,
    /// Who stored it (SPIFFE identity).
    pub created_by: String,
    /// When, RFC 3339.
    pub created_at: String,
}

impl Catalog {
    /// Stores the token sketch of extract `id` (recorded already).
    pub fn record_extract_sketch(&mut self, id: &str, sketch: &[u8]) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO extract_sketches(extract_id, sketch) VALUES (?1, ?2)",
                params![id, sketch],
            )
            .map_err(sql(&self.path))?;
        Ok(())
    }

    /// Calls `f` with every recorded extract, oldest first, one at a time
    /// (sketches are up to 128 KiB each; none are held together).
    pub fn for_each_traceable_extract(
        &self,
        mut f: impl FnMut(TraceRecord),
    ) -> Result<(), CatalogError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT x.id, x.grant_id, x.recipient, x.manifest, s.sketch
                 FROM extracts x LEFT JOIN extract_sketches s ON s.extract_id = x.id
                 ORDER BY x.created_at, x.id",
            )
            .map_err(sql(&self.path))?;
        let mut rows = stmt.query([]).map_err(sql(&self.path))?;
        while let Some(r) = rows.next().map_err(sql(&self.path))? {
            let record = (|| {
                Ok(TraceRecord {
                    id: r.get(0)?,
                    grant: r.get(1)?,
                    recipient: r.get(2)?,
                    manifest: r.get(3)?,
                    sketch: r.get(4)?,
                })
            })()
            .map_err(sql(&self.path))?;
            f(record);
        }
        Ok(())
    }

    /// Stores a new policy version, one above the highest stored (2 if
    /// none is), and returns it.
    pub fn put_policy(
        &mut self,
        toml: &str,
        sha256: &str,
        created_by: &str,
    ) -> Result<u64, CatalogError> {
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(sql(&path))?;
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 1) + 1 FROM policies",
                [],
                |r| r.get(0),
            )
            .map_err(sql(&path))?;
        tx.execute(
            "INSERT INTO policies(version, toml, sha256, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![version, toml, sha256, created_by, now_rfc3339()],
        )
        .map_err(sql(&path))?;
        tx.commit().map_err(sql(&path))?;
        Ok(u64::try_from(version).unwrap_or_default())
    }

    /// The highest stored policy version, if the operator stored any.
    pub fn current_policy(&self) -> Result<Option<StoredPolicy>, CatalogError> {
        self.conn
            .query_row(
                "SELECT version, toml, sha256, created_by, created_at FROM policies
                 ORDER BY version DESC LIMIT 1",
                [],
                |r| {
                    let version: i64 = r.get(0)?;
                    Ok(StoredPolicy {
                        version: u64::try_from(version).unwrap_or_default(),
                        toml: r.get(1)?,
                        sha256: r.get(2)?,
                        created_by: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(sql(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use crate::keys::MasterKey;

    #[test]
    fn policy_versions_rise_from_two() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::from_bytes(&[5; 32]).unwrap();
        let mut cat = super::super::tests::populated(&dir.path().join("c.db"), &master);
        assert_eq!(cat.current_policy().unwrap(), None);
        assert_eq!(cat.put_policy("k = 5", "aa", "op").unwrap(), 2);
        assert_eq!(cat.put_policy("k = 6", "bb", "op").unwrap(), 3);
        let p = cat.current_policy().unwrap().unwrap();
        assert_eq!(
            (p.version, p.toml.as_str(), p.sha256.as_str()),
            (3, "k = 6", "bb")
        );
        let mut n = 0;
        cat.for_each_traceable_extract(|_| n += 1).unwrap();
        assert_eq!(n, 0);
    }
}
