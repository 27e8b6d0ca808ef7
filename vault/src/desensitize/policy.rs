//! The versioned desensitization policy: (grade, semantic type, tier) →
//! technique, with the grade rules no policy can relax.
//!
//! The grade rules are fixed in code, not in the table:
//! - `core` columns never leave: every plan that names one is refused;
//! - `important` columns leave only as aggregates ([`Technique::AggregateOnly`]);
//! - a combination the table does not cover is suppressed (fail closed);
//! - a table that would `keep` a `general-4` column for tier 2 or 3, or
//!   that has rules for `important` or `core`, is rejected when loaded.

use serde::{Deserialize, Serialize};

use super::technique::Technique;
use super::Tier;
use crate::schema::{ColumnSchema, Grade, SemanticType};

/// One row of the table: for a semantic type at some grades, the
/// technique for each tier, and the standard it follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The column type the rule covers.
    #[serde(rename = "type")]
    pub semantic_type: SemanticType,
    /// The general grades the rule covers.
    pub grades: Vec<Grade>,
    /// Technique for tier 1.
    pub tier1: Technique,
    /// Technique for tier 2.
    pub tier2: Technique,
    /// Technique for tier 3.
    pub tier3: Technique,
    /// The standard or reasoning the rule follows.
    #[serde(default)]
    pub basis: String,
}

impl Rule {
    fn technique(&self, tier: Tier) -> Technique {
        match tier {
            Tier::One => self.tier1,
            Tier::Two => self.tier2,
            Tier::Three => self.tier3,
        }
    }
}

/// Why a policy table was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The version string is empty or not one printable ASCII token.
    #[error("policy version must be a non-empty printable ASCII token")]
    BadVersion,
    /// k must be at least 2 for k-anonymity to mean anything.
    #[error("policy k must be at least 2, got {0}")]
    BadK(usize),
    /// Rules cannot cover `important` or `core`: fixed rules govern them.
    #[error("rule for {semantic_type} covers {grade}, which only the fixed grade rules govern")]
    ReservedGrade {
        /// The rule's type.
        semantic_type: SemanticType,
        /// The reserved grade.
        grade: Grade,
    },
    /// A `general-4` column would be kept as is for tier 2 or 3.
    #[error("rule for {semantic_type} keeps general-4 data for {tier}")]
    KeepsGeneral4 {
        /// The rule's type.
        semantic_type: SemanticType,
        /// The tier it would be kept for.
        tier: Tier,
    },
    /// A technique with an empty band, cell or range.
    #[error("rule for {semantic_type} has invalid parameters for {tier}")]
    InvalidTechnique {
        /// The rule's type.
        semantic_type: SemanticType,
        /// The tier of the invalid technique.
        tier: Tier,
    },
    /// Two rules cover the same type and grade.
    #[error("two rules cover {semantic_type} at {grade}")]
    Overlap {
        /// The type covered twice.
        semantic_type: SemanticType,
        /// The grade covered twice.
        grade: Grade,
    },
}

/// What the policy decides for one column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyDecision {
    /// Release the column through this technique.
    Apply(Technique),
    /// The column may not leave at all.
    Refuse(RefusalReason),
}

/// Why a column cannot be part of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The column is graded `core`: core data never leaves.
    CoreData,
    /// The column may leave only through aggregates, not row by row.
    AggregateOnly,
}

/// A refused plan, naming the first column that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column:?} cannot be released: {}", match .reason {
    RefusalReason::CoreData => "core data never leaves the appliance",
    RefusalReason::AggregateOnly => "it may only be released as aggregates",
})]
pub struct Refusal {
    /// The column's name.
    pub column: String,
    /// Why.
    pub reason: RefusalReason,
}

/// One column of a plan: its name, its type and what is done to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnPlan {
    /// Column name.
    pub name: String,
    /// The column's type (selects the pseudonym prefix, the mask form of
    /// e-mails and the source of an age band).
    #[serde(rename = "type")]
    pub semantic_type: SemanticType,
    /// The technique applied.
    #[serde(flatten)]
    pub technique: Technique,
}

/// The policy as stored (TOML or JSON), before validation.
#[derive(Deserialize, Serialize)]
struct PolicyFile {
    version: String,
    k: usize,
    #[serde(rename = "rule")]
    rules: Vec<Rule>,
}

/// A validated, versioned policy table. See [`Policy::default_v1`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyFile", into = "PolicyFile")]
pub struct Policy {
    version: String,
    k: usize,
    rules: Vec<Rule>,
}

impl TryFrom<PolicyFile> for Policy {
    type Error = PolicyError;

    fn try_from(f: PolicyFile) -> Result<Self, PolicyError> {
        Policy::new(f.version, f.k, f.rules)
    }
}

impl From<Policy> for PolicyFile {
    fn from(p: Policy) -> Self {
        PolicyFile {
            version: p.version,
            k: p.k,
            rules: p.rules,
        }
    }
}

impl Policy {
    /// A policy from its parts, validated (see [`PolicyError`]).
    pub fn new(version: String, k: usize, rules: Vec<Rule>) -> Result<Self, PolicyError> {
        let token_ok = |c: char| c.is_ascii_graphic();
        if version.is_empty() || !version.chars().all(token_ok) {
            return Err(PolicyError::BadVersion);
        }
        if k < 2 {
            return Err(PolicyError::BadK(k));
        }
        let mut seen = Vec::new();
        for rule in &rules {
            check_rule(rule)?;
            for &grade in &rule.grades {
                if seen.contains(&(rule.semantic_type, grade)) {
                    return Err(PolicyError::Overlap {
                        semantic_type: rule.semantic_type,
                        grade,
                    });
                }
                seen.push((rule.semantic_type, grade));
            }
        }
        Ok(Self { version, k, rules })
    }

    /// The policy's version, recorded in every manifest.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The k of k-anonymity for quasi-identifiers and of small-cell
    /// suppression in aggregates.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The table's rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The decision for one column: the fixed grade rules first, then the
    /// table, then suppression for anything uncovered.
    pub fn decide(&self, grade: Grade, semantic_type: SemanticType, tier: Tier) -> PolicyDecision {
        match grade {
            Grade::Core => return PolicyDecision::Refuse(RefusalReason::CoreData),
            Grade::Important => return PolicyDecision::Apply(Technique::AggregateOnly),
            _ => {}
        }
        let technique = self
            .rules
            .iter()
            .find(|r| r.semantic_type == semantic_type && r.grades.contains(&grade))
            .map_or(Technique::Suppress, |r| r.technique(tier));
        if grade == Grade::General4 && tier > Tier::One && technique == Technique::Keep {
            return PolicyDecision::Apply(Technique::Suppress);
        }
        PolicyDecision::Apply(technique)
    }

    /// The plan of a row-level extract: refused if any column is `core` or
    /// may only be aggregated.
    pub fn plan_rows(
        &self,
        columns: &[ColumnSchema],
        tier: Tier,
    ) -> Result<Vec<ColumnPlan>, Refusal> {
        self.plan(columns, tier, true)
    }

    /// The plan of an aggregate: refused only for `core` columns. Columns
    /// planned [`Technique::AggregateOnly`] may be grouped or summed; the
    /// caller applies small-cell suppression ([`super::kanon::aggregate`]).
    pub fn plan_aggregate(
        &self,
        columns: &[ColumnSchema],
        tier: Tier,
    ) -> Result<Vec<ColumnPlan>, Refusal> {
        self.plan(columns, tier, false)
    }

    fn plan(
        &self,
        columns: &[ColumnSchema],
        tier: Tier,
        rows: bool,
    ) -> Result<Vec<ColumnPlan>, Refusal> {
        let refuse = |c: &ColumnSchema, reason| Refusal {
            column: c.name.clone(),
            reason,
        };
        columns
            .iter()
            .map(|c| match self.decide(c.grade, c.semantic_type, tier) {
                PolicyDecision::Refuse(reason) => Err(refuse(c, reason)),
                PolicyDecision::Apply(Technique::AggregateOnly) if rows => {
                    Err(refuse(c, RefusalReason::AggregateOnly))
                }
                PolicyDecision::Apply(technique) => Ok(ColumnPlan {
                    name: c.name.clone(),
                    semantic_type: c.semantic_type,
                    technique,
                }),
            })
            .collect()
    }
}

fn check_rule(rule: &Rule) -> Result<(), PolicyError> {
    let semantic_type = rule.semantic_type;
    if let Some(&grade) = rule.grades.iter().find(|g| **g > Grade::General4) {
        return Err(PolicyError::ReservedGrade {
            semantic_type,
            grade,
        });
    }
    for tier in Tier::ALL {
        let t = rule.technique(tier);
        if !t.is_valid() {
            return Err(PolicyError::InvalidTechnique {
                semantic_type,
                tier,
            });
        }
        let general4 = rule.grades.contains(&Grade::General4);
        if general4 && tier > Tier::One && t == Technique::Keep {
            return Err(PolicyError::KeepsGeneral4 {
                semantic_type,
                tier,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod default_v1;
mod toml_file;

pub use toml_file::{PolicyTomlError, DEFAULT_TOML};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desensitize::technique::Generalization;

    fn col(name: &str, semantic_type: SemanticType, grade: Grade) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            semantic_type,
            confidence: 1.0,
            grade,
            quasi_identifier: false,
        }
    }

    #[test]
    fn core_column_refuses_every_plan_naming_it() {
        let p = Policy::default_v1();
        let cols = [
            col("mobile", SemanticType::Mobile, Grade::General3),
            col("secret", SemanticType::Code, Grade::Core),
        ];
        for tier in Tier::ALL {
            let want = Refusal {
                column: "secret".into(),
                reason: RefusalReason::CoreData,
            };
            assert_eq!(p.plan_rows(&cols, tier), Err(want.clone()));
            assert_eq!(p.plan_aggregate(&cols, tier), Err(want));
        }
        let msg = p.plan_rows(&cols, Tier::One).unwrap_err().to_string();
        assert!(msg.contains("\"secret\"") && msg.contains("core"), "{msg}");
    }

    #[test]
    fn important_column_is_aggregate_only() {
        let p = Policy::default_v1();
        let cols = [col("balance", SemanticType::Amount, Grade::Important)];
        let err = p.plan_rows(&cols, Tier::One).unwrap_err();
        assert_eq!(err.reason, RefusalReason::AggregateOnly);
        assert_eq!(err.column, "balance");
        let plan = p.plan_aggregate(&cols, Tier::One).unwrap();
        assert_eq!(plan[0].technique, Technique::AggregateOnly);
    }

    #[test]
    fn uncovered_combination_is_suppressed() {
        let rule = Rule {
            semantic_type: SemanticType::Mobile,
            grades: vec![Grade::General3],
            tier1: Technique::Keep,
            tier2: Technique::Keep,
            tier3: Technique::Keep,
            basis: String::new(),
        };
        let p = Policy::new("test-1".into(), 5, vec![rule]).unwrap();
        let keep = PolicyDecision::Apply(Technique::Keep);
        let suppress = PolicyDecision::Apply(Technique::Suppress);
        assert_eq!(
            p.decide(Grade::General3, SemanticType::Mobile, Tier::Three),
            keep
        );
        assert_eq!(
            p.decide(Grade::General2, SemanticType::Mobile, Tier::One),
            suppress
        );
        assert_eq!(
            p.decide(Grade::General3, SemanticType::Email, Tier::One),
            suppress
        );
    }

    #[test]
    fn unsafe_tables_are_rejected() {
        let rule = |grades: Vec<Grade>, t2| Rule {
            semantic_type: SemanticType::Amount,
            grades,
            tier1: Technique::Keep,
            tier2: t2,
            tier3: Technique::Suppress,
            basis: String::new(),
        };
        let new = |rules| Policy::new("x".into(), 5, rules);
        assert!(matches!(
            new(vec![rule(vec![Grade::General4], Technique::Keep)]),
            Err(PolicyError::KeepsGeneral4 {
                tier: Tier::Two,
                ..
            })
        ));
        assert!(matches!(
            new(vec![rule(vec![Grade::Important], Technique::Suppress)]),
            Err(PolicyError::ReservedGrade { .. })
        ));
        let bad = Technique::Generalize(Generalization::AmountRange { width: 0 });
        assert!(matches!(
            new(vec![rule(vec![Grade::General1], bad)]),
            Err(PolicyError::InvalidTechnique { .. })
        ));
        let twice = vec![
            rule(vec![Grade::General1], Technique::Keep),
            rule(vec![Grade::General1], Technique::Keep),
        ];
        assert!(matches!(new(twice), Err(PolicyError::Overlap { .. })));
        assert_eq!(
            Policy::new("x".into(), 1, vec![]),
            Err(PolicyError::BadK(1))
        );
        assert_eq!(
            Policy::new("".into(), 5, vec![]),
            Err(PolicyError::BadVersion)
        );
    }

    #[test]
    fn default_policy_covers_every_general_combination_and_round_trips() {
        let p = Policy::default_v1();
        assert_eq!(p.version(), "v1");
        for ty in SemanticType::ALL {
            for g in [
                Grade::General1,
                Grade::General2,
                Grade::General3,
                Grade::General4,
            ] {
                let n = p
                    .rules()
                    .iter()
                    .filter(|r| r.semantic_type == ty && r.grades.contains(&g));
                assert_eq!(n.count(), 1, "{ty} {g}");
            }
        }
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
        let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["k"] = 1.into();
        assert!(serde_json::from_value::<Policy>(v).is_err());
    }
}
