//! The row-level desensitizer of one extract, and the per-grant
//! pseudonymization key it uses.

use ring::hmac;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::fingerprint::{Cells, FingerprintKey};
use super::policy::{ColumnPlan, Policy, Refusal};
use super::prf::Prf;
use super::technique::Technique;
use super::transform::{self, Ymd};
use super::Tier;
use crate::keys::{PseudonymRoot, KEY_LEN};
use crate::schema::ColumnSchema;

/// HKDF info prefix of per-grant pseudonymization keys; the grant id follows.
const GRANT_KEY_LABEL: &[u8] = b"zonevault/v1/pseudonym-grant/";

/// The pseudonymization key of one grant. Zeroizes on drop; no `Debug`,
/// `Clone`, `Serialize` or `PartialEq`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct PseudonymKey([u8; KEY_LEN]);

impl PseudonymKey {
    /// The HMAC-SHA256 key for pseudonyms under this grant.
    pub(super) fn hmac_key(&self) -> Prf {
        Prf::new(&self.0)
    }
}

/// The pseudonymization key of grant `grant_id`: HKDF-SHA256 (RFC 5869)
/// with the pseudonymization root as input keying material, an empty salt
/// and `zonevault/v1/pseudonym-grant/<grant id>` as info. Pseudonyms are
/// therefore stable within a grant and unlinkable across grants.
pub fn grant_key(root: &PseudonymRoot, grant_id: &str) -> PseudonymKey {
    // With 32 bytes of output, HKDF-Expand is the single block
    // T(1) = HMAC(PRK, info ‖ 0x01).
    let salt = hmac::Key::new(hmac::HMAC_SHA256, &[]);
    let prk = hmac::sign(&salt, root.derivation_key_bytes());
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()));
    ctx.update(GRANT_KEY_LABEL);
    ctx.update(grant_id.as_bytes());
    ctx.update(&[0x01]);
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(ctx.sign().as_ref());
    let out = PseudonymKey(key);
    key.zeroize();
    out
}

/// Applies a row-level plan to rows. Built only from a plan the policy
/// accepts, so it never holds a `core` or aggregate-only column.
///
/// Holds the grant's HMAC key schedule (ring's, which does not zeroize)
/// for its lifetime; drop it when the extract ends. No `Debug`.
pub struct Desensitizer {
    plan: Vec<ColumnPlan>,
    base: Vec<ColumnPlan>,
    level: u32,
    quasi_identifiers: Vec<usize>,
    hmac: Prf,
    today: Ymd,
    fingerprint: Option<FingerprintKey>,
}

impl Desensitizer {
    /// The desensitizer of an extract of `columns` (in row order) for a
    /// recipient in `tier`, or the refusal naming the first column that
    /// cannot be released row by row. Age bands are computed at today's
    /// UTC date unless [`Desensitizer::with_reference_date`] says otherwise.
    pub fn new(
        columns: &[ColumnSchema],
        tier: Tier,
        policy: &Policy,
        key: &PseudonymKey,
    ) -> Result<Self, Refusal> {
        let plan = policy.plan_rows(columns, tier)?;
        let quasi_identifiers = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.quasi_identifier)
            .map(|(i, _)| i)
            .collect();
        let now = time::OffsetDateTime::now_utc().date();
        Ok(Self {
            base: plan.clone(),
            plan,
            level: 0,
            quasi_identifiers,
            hmac: key.hmac_key(),
            today: ymd(now),
            fingerprint: None,
        })
    }

    /// Computes age bands as of `date` instead of today (for reproducible
    /// extracts and tests).
    pub fn with_reference_date(mut self, date: time::Date) -> Self {
        self.today = ymd(date);
        self
    }

    /// Marks ranges and age bands with the recipient's keyed choices (see
    /// [`super::fingerprint`]); row-level extracts do, aggregates do not.
    pub fn with_fingerprint(mut self, key: FingerprintKey) -> Self {
        self.fingerprint = Some(key);
        self
    }

    /// The plan: each output column with its technique, in row order.
    pub fn plan(&self) -> &[ColumnPlan] {
        &self.plan
    }

    /// Generalizes the quasi-identifier columns `level` steps beyond the
    /// policy ([`Technique::coarser`]); 0 restores the policy's plan.
    pub fn set_generalization_level(&mut self, level: u32) {
        self.level = level;
        for &i in &self.quasi_identifiers {
            let base = &self.base[i];
            self.plan[i].technique = base.technique.coarser(base.semantic_type, level);
        }
    }

    /// How many steps beyond the policy the quasi-identifiers are generalized.
    pub fn generalization_level(&self) -> u32 {
        self.level
    }

    /// The quasi-identifier cells `values` (only those, in
    /// [`Self::quasi_identifiers`] order) as they would be released at
    /// generalization `level`, into `out`; for counting classes at several
    /// levels in one pass that reads only these columns.
    pub fn quasi_identifiers_at(&self, values: &[&str], level: u32, out: &mut Vec<String>) {
        out.truncate(self.quasi_identifiers.len());
        out.resize_with(self.quasi_identifiers.len(), String::new);
        for (j, (cell, &i)) in out.iter_mut().zip(&self.quasi_identifiers).enumerate() {
            cell.clear();
            let base = &self.base[i];
            let technique = base.technique.coarser(base.semantic_type, level);
            let value = values.get(j).copied().unwrap_or("");
            self.apply_with(base, technique, value, cell);
        }
    }

    /// Indices of the quasi-identifier columns, for k-anonymity over the
    /// output (see [`super::kanon`]).
    pub fn quasi_identifiers(&self) -> &[usize] {
        &self.quasi_identifiers
    }

    /// Desensitizes one row into `out`, which ends up with exactly one
    /// cell per planned column. The strings already in `out` are reused,
    /// so a caller that passes the same vector for every row allocates
    /// only when a cell outgrows its buffer. A missing input cell is read
    /// as empty; extra input cells are ignored. Empty and blank values stay
    /// empty whatever the technique.
    pub fn apply_row(&self, row: &[&str], out: &mut Vec<String>) {
        out.truncate(self.plan.len());
        out.resize_with(self.plan.len(), String::new);
        for (i, cell) in out.iter_mut().enumerate() {
            cell.clear();
            self.apply_value(i, row.get(i).copied().unwrap_or(""), cell);
        }
    }

    /// Desensitizes `value` of column `column` and appends it to `out`.
    /// Appends nothing for a column outside the plan.
    pub fn apply_value(&self, column: usize, value: &str, out: &mut String) {
        let Some(plan) = self.plan.get(column) else {
            return;
        };
        self.apply_with(plan, plan.technique, value, out);
    }

    /// Applies `technique` to `value` of the column planned as `plan`.
    fn apply_with(&self, plan: &ColumnPlan, technique: Technique, value: &str, out: &mut String) {
        if value.trim().is_empty() {
            return;
        }
        let ty = plan.semantic_type;
        match technique {
            Technique::Keep => out.push_str(value),
            Technique::Mask {
                keep_first,
                keep_last,
            } => transform::mask(value, keep_first, keep_last, ty, out),
            Technique::Pseudonymize => transform::pseudonymize(&self.hmac, ty, value, out),
            Technique::Generalize(g) => {
                let key = self.fingerprint.as_ref().map(|k| (k, plan.name.as_str()));
                transform::generalize(g, ty, value, self.today, Cells { key }, out)
            }
            Technique::RedactIdentifiers => transform::redact_identifiers(value, out),
            Technique::Suppress | Technique::AggregateOnly => {}
        }
    }
}

fn ymd(d: time::Date) -> Ymd {
    let year = u32::try_from(d.year()).unwrap_or(0);
    (year, u32::from(u8::from(d.month())), u32::from(d.day()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desensitize::technique::Generalization;
    use crate::keys::MasterKey;
    use crate::sample;
    use crate::schema::{Grade, SemanticType};

    fn root() -> PseudonymRoot {
        MasterKey::from_bytes(&[7; 32]).unwrap().pseudonym_root()
    }

    fn sample_columns() -> Vec<ColumnSchema> {
        sample::column_schemas()
    }

    fn desensitizer(tier: Tier, grant: &str) -> Desensitizer {
        let d = Desensitizer::new(
            &sample_columns(),
            tier,
            &Policy::default_v1(),
            &grant_key(&root(), grant),
        );
        let date = time::Date::from_calendar_date(2025, time::Month::June, 15).unwrap();
        d.unwrap().with_reference_date(date)
    }

    fn sample_rows(n: u64) -> Vec<Vec<String>> {
        let mut csv = Vec::new();
        sample::write_csv(n, 42, &mut csv).unwrap();
        let text = String::from_utf8(csv).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    }

    fn apply(d: &Desensitizer, row: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        d.apply_row(row, &mut out);
        out
    }

    #[test]
    fn grant_keys_are_deterministic_per_grant() {
        let a = grant_key(&root(), "g-1");
        assert_eq!(a.0, grant_key(&root(), "g-1").0);
        assert_ne!(a.0, grant_key(&root(), "g-2").0);
        assert_ne!(&a.0, root().derivation_key_bytes());
    }

    #[test]
    fn pseudonyms_stable_within_grant_and_differ_across_grants() {
        let row = [
            "1",
            "张三",
            "11010519491231002X",
            "13812345678",
            "",
            "",
            "",
            "",
        ];
        let (a, b) = (
            desensitizer(Tier::Two, "g-1"),
            desensitizer(Tier::Two, "g-2"),
        );
        let (x, y, z) = (apply(&a, &row), apply(&a, &row), apply(&b, &row));
        assert!(x[2].starts_with("RID-") && x[1].starts_with("NAME-"));
        assert_eq!(x, y);
        assert_ne!(x[2], z[2]);
        assert_ne!(x[1], z[1]);
    }

    #[test]
    fn sample_rows_desensitize_per_tier() {
        let row = [
            "7",
            "张伟",
            "11010519491231002X",
            "１３８１２３４５６７８",
            "6222021234567890123",
            "北京市海淀区中关村大街27号",
            "1234.56",
            "2024-03-05",
        ];
        let t1 = apply(&desensitizer(Tier::One, "g"), &row);
        assert_eq!(t1[1], "张*");
        assert_eq!(
            &t1[3..],
            [
                "138****5678",
                "622202*********0123",
                "北京市海淀区",
                "1234.56",
                "2024-03-05"
            ]
        );
        let t2 = apply(&desensitizer(Tier::Two, "g"), &row);
        assert_eq!(
            &t2[3..],
            [
                "138****5678",
                "***************0123",
                "北京市海淀区",
                "[1000,2000)",
                "2024-03"
            ]
        );
        let t3 = apply(&desensitizer(Tier::Three, "g"), &row);
        assert_eq!(
            t3,
            ["7", "", "", "", "", "北京市海淀区", "[0,10000)", "2024"]
        );
    }

    #[test]
    fn raw_identifiers_never_appear_in_output() {
        let rows = sample_rows(1000);
        assert_eq!(rows.len(), 1000);
        for tier in Tier::ALL {
            let d = desensitizer(tier, "g-leak");
            let mut out = Vec::new();
            for row in &rows {
                let cells: Vec<&str> = row.iter().map(String::as_str).collect();
                d.apply_row(&cells, &mut out);
                for raw in &row[2..=4] {
                    assert!(
                        out.iter().all(|c| !c.contains(raw.as_str())),
                        "{tier}: {raw} in {out:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn plan_and_row_shape() {
        let d = desensitizer(Tier::Three, "g");
        let address = &d.plan()[5];
        assert_eq!(address.semantic_type, SemanticType::Address);
        assert_eq!(
            address.technique,
            Technique::Generalize(Generalization::AddressToDistrict)
        );
        assert_eq!(d.quasi_identifiers(), [5]);
        assert_eq!(apply(&d, &["1"]), ["1", "", "", "", "", "", "", ""]);
        assert_eq!(
            apply(&d, &["1", " ", "", "", "", "", "", "", "extra"]).len(),
            8
        );
    }

    #[test]
    fn core_column_refuses_the_desensitizer() {
        let mut cols = sample_columns();
        cols[6].grade = Grade::Core;
        let r = Desensitizer::new(
            &cols,
            Tier::One,
            &Policy::default_v1(),
            &grant_key(&root(), "g"),
        );
        assert_eq!(r.err().map(|e| e.column), Some("amount".to_owned()));
    }
}
