//! The policy as a TOML file: the default shipped in the repository
//! (`vault/policy/default.toml`, embedded in the binary) and the operators'
//! replacements, validated strictly before anything uses them.
//!
//! Every problem names where it is: `k`, `rule[3].tier2`, `rule[5].grades`
//! … An unknown key, technique, parameter, type or grade, a missing one, a
//! rule that would relax a fixed grade rule, and two rules covering the
//! same (type, grade) are all refused. The version is not part of the file:
//! the catalog numbers what operators store.

use std::collections::HashSet;
use std::sync::OnceLock;

use toml::{Table, Value};

use super::{check_rule, Policy, PolicyError, Rule};
use crate::desensitize::technique::Technique;
use crate::desensitize::Tier;
use crate::schema::{Grade, SemanticType};

/// The shipped default policy (version `v1`).
pub const DEFAULT_TOML: &str = include_str!("../../../policy/default.toml");

/// Keys of one `[[rule]]`.
const RULE_KEYS: [&str; 6] = ["type", "grades", "tier1", "tier2", "tier3", "basis"];

/// Where a policy file is wrong, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct PolicyTomlError {
    /// `toml`, `k`, `rule`, or `rule[N].<key>` (rules count from 1).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> PolicyTomlError {
    PolicyTomlError {
        field: field.into(),
        problem: problem.into(),
    }
}

impl Policy {
    /// The shipped default policy, version `v1` (parsed once). Should the
    /// embedded file ever fail to parse, the result has no rules, so every
    /// column is suppressed (fail closed); a unit test keeps it parsing.
    pub fn default_v1() -> Policy {
        static DEFAULT: OnceLock<Policy> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                Policy::from_toml(DEFAULT_TOML, "v1").unwrap_or_else(|_| Policy {
                    version: "v1".to_owned(),
                    k: 5,
                    rules: Vec::new(),
                })
            })
            .clone()
    }

    /// A policy from its TOML text, as version `version`; see the module
    /// documentation for what is refused.
    pub fn from_toml(text: &str, version: &str) -> Result<Policy, PolicyTomlError> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            bad("toml", e.to_string().replace('\n', " ").trim().to_owned())
        })?;
        if let Some(key) = table.keys().find(|k| *k != "k" && *k != "rule") {
            return Err(bad(
                key.as_str(),
                "unknown key; a policy has `k` and `[[rule]]`s",
            ));
        }
        let k = match table.get("k") {
            None => return Err(bad("k", "missing")),
            Some(Value::Integer(n)) if *n >= 2 => {
                usize::try_from(*n).map_err(|_| bad("k", "too large"))?
            }
            Some(_) => return Err(bad("k", "must be an integer of at least 2")),
        };
        let rules = match table.get("rule") {
            None => Vec::new(),
            Some(Value::Array(rows)) => parse_rules(rows)?,
            Some(_) => return Err(bad("rule", "must be an array of tables: [[rule]]")),
        };
        Policy::new(version.to_owned(), k, rules).map_err(|e| bad("policy", e.to_string()))
    }
}

fn parse_rules(rows: &[Value]) -> Result<Vec<Rule>, PolicyTomlError> {
    let mut seen: HashSet<(SemanticType, Grade)> = HashSet::new();
    let mut rules = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let at = |key: &str| format!("rule[{}].{key}", i + 1);
        let table = row
            .as_table()
            .ok_or_else(|| bad(format!("rule[{}]", i + 1), "must be a table"))?;
        let rule = parse_rule(table, &at)?;
        for &grade in &rule.grades {
            if !seen.insert((rule.semantic_type, grade)) {
                let problem = format!(
                    "another rule already covers {} at {grade}",
                    rule.semantic_type
                );
                return Err(bad(at("grades"), problem));
            }
        }
        check_rule(&rule).map_err(|e| rule_problem(&e, &at))?;
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_rule(t: &Table, at: &dyn Fn(&str) -> String) -> Result<Rule, PolicyTomlError> {
    if let Some(key) = t.keys().find(|k| !RULE_KEYS.contains(&k.as_str())) {
        let problem = format!("unknown key; a rule has {}", RULE_KEYS.join(", "));
        return Err(bad(at(key), problem));
    }
    let field = |key: &str| t.get(key).ok_or_else(|| bad(at(key), "missing"));
    let semantic_type: SemanticType =
        field("type")?
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| {
                bad(
                    at("type"),
                    format!("unknown semantic type: {}", e.message()),
                )
            })?;
    let grades = parse_grades(field("grades")?, &at("grades"))?;
    let technique = |key: &str| parse_technique(field(key)?, &at(key));
    let basis = match field("basis")? {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        _ => return Err(bad(at("basis"), "must name the standard the rule follows")),
    };
    Ok(Rule {
        semantic_type,
        grades,
        tier1: technique("tier1")?,
        tier2: technique("tier2")?,
        tier3: technique("tier3")?,
        basis,
    })
}

fn parse_grades(v: &Value, at: &str) -> Result<Vec<Grade>, PolicyTomlError> {
    let items = v
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad(at, "must be a non-empty array of grades"))?;
    items
        .iter()
        .map(|g| {
            g.clone().try_into().map_err(|_| {
                bad(
                    at,
                    format!("bad grade {g}; expected general-1, general-2, general-3 or general-4"),
                )
            })
        })
        .collect()
}

/// A technique table; parameters it does not take are refused by name.
fn parse_technique(v: &Value, at: &str) -> Result<Technique, PolicyTomlError> {
    let table = v
        .as_table()
        .ok_or_else(|| bad(at, "must be a table such as { technique = \"suppress\" }"))?;
    if !table.contains_key("technique") {
        return Err(bad(at, "missing `technique`"));
    }
    let technique: Technique = v.clone().try_into().map_err(|e: toml::de::Error| {
        let problem = e
            .message()
            .replace("variant", "technique or generalization");
        bad(at, problem)
    })?;
    let known = Value::try_from(technique).map_err(|e| bad(at, e.to_string()))?;
    let known = known.as_table().cloned().unwrap_or_default();
    if let Some(extra) = table.keys().find(|k| !known.contains_key(k.as_str())) {
        return Err(bad(
            at,
            format!("unknown parameter `{extra}` for {technique}"),
        ));
    }
    Ok(technique)
}

fn rule_problem(e: &PolicyError, at: &dyn Fn(&str) -> String) -> PolicyTomlError {
    let tier_field = |t: Tier| at(&format!("tier{}", t.number()));
    match e {
        PolicyError::ReservedGrade { grade, .. } => bad(
            at("grades"),
            format!(
                "{grade} is governed by the fixed rules (important: aggregates only; core: never)"
            ),
        ),
        PolicyError::KeepsGeneral4 { tier, .. } => bad(
            tier_field(*tier),
            "would keep general-4 data as stored for tier 2 or 3",
        ),
        PolicyError::InvalidTechnique { tier, .. } => bad(
            tier_field(*tier),
            "invalid parameters: bands, cells and ranges must be positive",
        ),
        other => bad(at("grades"), other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_toml_is_the_reference_table() {
        let parsed = Policy::from_toml(DEFAULT_TOML, "v1").unwrap();
        assert_eq!(parsed, Policy::reference_v1());
        assert_eq!(Policy::default_v1(), parsed);
        // Every rule has a comment naming a standard just above it.
        let rules = DEFAULT_TOML.matches("[[rule]]").count();
        assert_eq!(rules, parsed.rules().len());
        for block in DEFAULT_TOML.split("[[rule]]").skip(1) {
            assert!(block.contains("basis = \"GB"), "{block}");
        }
        for block in DEFAULT_TOML.split("\n[[rule]]").take(rules) {
            let comment = block
                .lines()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .count();
            assert!(comment > 0, "no comment before a rule: {block}");
        }
    }

    fn with(rule_body: &str) -> String {
        format!("k = 5\n[[rule]]\ntype = \"amount\"\ngrades = [\"general-1\"]\nbasis = \"GB/T 37964-2019\"\n{rule_body}")
    }

    const OK_TIERS: &str =
        "tier1 = { technique = \"keep\" }\ntier2 = { technique = \"suppress\" }\n";

    fn refused(text: &str) -> PolicyTomlError {
        Policy::from_toml(text, "v2").unwrap_err()
    }

    #[test]
    fn problems_name_the_row_and_field() {
        let good = with(&format!(
            "{OK_TIERS}tier3 = {{ technique = \"suppress\" }}\n"
        ));
        assert_eq!(Policy::from_toml(&good, "v2").unwrap().version(), "v2");
        let cases = [
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"encrypt\" }}\n")), "rule[1].tier3", "encrypt"),
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"mask\", keep_first = 3 }}\n")), "rule[1].tier3", "keep_last"),
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"generalize\", to = \"amount_range\" }}\n")), "rule[1].tier3", "width"),
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"suppress\", width = 3 }}\n")), "rule[1].tier3", "width"),
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"generalize\", to = \"amount_range\", width = 0 }}\n")), "rule[1].tier3", "positive"),
            (with(OK_TIERS), "rule[1].tier3", "missing"),
            (with(&format!("{OK_TIERS}tier3 = {{ technique = \"suppress\" }}\ncolour = 1\n")), "rule[1].colour", "unknown key"),
            (good.replace("general-1", "general-9"), "rule[1].grades", "general-9"),
            (good.replace("general-1", "core"), "rule[1].grades", "fixed rules"),
            (good.replace("\"amount\"", "\"salary\""), "rule[1].type", "salary"),
            (good.replace("basis = \"GB/T 37964-2019\"", "basis = \"\""), "rule[1].basis", "standard"),
            (good.replace("k = 5", "k = 1"), "k", "at least 2"),
            (good.replace("k = 5", "version = 3\nk = 5"), "version", "unknown key"),
            (format!("{good}\n{}", good.replace("k = 5", "")), "rule[2].grades", "already covers"),
            ("k = ".to_owned(), "toml", ""),
        ];
        for (text, field, problem) in cases {
            let e = refused(&text);
            assert_eq!(e.field, field, "{text}\n{e}");
            assert!(e.problem.contains(problem), "{text}\n{e}");
        }
        let g4 = good.replace("general-1", "general-4").replace(
            "tier2 = { technique = \"suppress\" }",
            "tier2 = { technique = \"keep\" }",
        );
        assert_eq!(refused(&g4).field, "rule[1].tier2");
    }
}
