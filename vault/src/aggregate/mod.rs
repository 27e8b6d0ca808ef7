//! Aggregates over a dataset file: counts, sums and averages per group,
//! with small-cell suppression and optional differential-privacy noise on
//! the counts, charged against a per-grant ε budget kept in the catalog.
//!
//! A [`AggregatePlan`] is built once from the dataset's schema, the
//! columns a grant allows and the tier's [`Policy`]: every referenced
//! column must be granted and not `core`; group-by columns are released
//! only as their desensitized (generalized, masked, …) values, so an
//! `important` column, which has no row-level form, cannot be a group key
//! but can be counted, summed and averaged. [`run`] scans the rows once,
//! groups them by their *output* keys and drops every cell of fewer than k
//! rows.
//!
//! What this module never does: splice a value into SQL (the filter comes
//! in as a parameterized body from [`crate::filter`]), release a cell of
//! fewer than k rows, take noise from anything but the operating system's
//! CSPRNG in [`run`] (the seeded [`run_with_source`] is for tests and
//! replays), or add noise to sums and averages, whose sensitivity is
//! unbounded without value bounds (such requests are refused).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::catalog::CatalogError;
use crate::desensitize::kanon::UniformSource;
use crate::desensitize::{
    ColumnPlan, Desensitizer, Policy, PseudonymKey, Refusal, Technique, Tier,
};
use crate::schema::ColumnSchema;

mod budget;
mod noise;

pub use budget::{epsilon_spent, spend_epsilon};
pub use noise::SystemSource;

use noise::noisy;

/// The ε a grant may spend on noisy aggregates unless configured otherwise.
pub const DEFAULT_EPSILON_BUDGET: f64 = 1.0;
/// Most distinct groups one aggregate may form (memory bound).
pub const MAX_GROUPS: usize = 1_000_000;
/// A parameterized `WHERE` body and its values, from
/// [`crate::filter::Expr::to_sql`].
pub type WhereClause = (String, Vec<Value>);

/// Most group-by columns and most metrics in one request.
pub const MAX_ITEMS: usize = 16;

/// A metric function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MetricFn {
    /// Rows in the cell, or with a column: rows where it is not empty.
    Count,
    /// Sum of the column's numeric values.
    Sum,
    /// Mean of the column's numeric values.
    Avg,
}

/// One requested metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    /// What to compute.
    pub function: MetricFn,
    /// Over which column (required for sum and avg).
    pub column: Option<String>,
}

impl Metric {
    /// `count`, `count(col)`, `sum(col)`, `avg(col)`.
    pub fn label(&self) -> String {
        let f = match self.function {
            MetricFn::Count => "count",
            MetricFn::Sum => "sum",
            MetricFn::Avg => "avg",
        };
        match &self.column {
            Some(c) => format!("{f}({c})"),
            None => f.to_owned(),
        }
    }
}

/// A differential-privacy noise mechanism for counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Continuous Laplace noise of scale 1/ε, rounded to an integer.
    Laplace,
    /// Discrete Laplace (two-sided geometric) noise of scale 1/ε.
    DiscreteLaplace,
}

/// Noise for one request: the whole ε is split evenly over its metrics
/// (each row falls in one cell, so cells compose in parallel).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The ε this request spends, positive and finite.
    pub epsilon: f64,
}

/// What an analyst asks for, after its filter was parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRequest {
    /// Group-by columns, in output order.
    pub group_by: Vec<String>,
    /// Metrics, in output order.
    pub metrics: Vec<Metric>,
    /// Columns the analyst's filter references.
    pub filter_columns: Vec<String>,
    /// Optional noise on counts.
    pub noise: Option<Noise>,
}

/// Why an aggregate is refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    /// The column is not in the dataset.
    #[error("no column {column:?} in the dataset")]
    UnknownColumn {
        /// The column.
        column: String,
    },
    /// The column is not among the grant's columns.
    #[error("column {column:?} is not granted")]
    NotGranted {
        /// The column.
        column: String,
    },
    /// The policy refuses the column here (core, or an aggregate-only
    /// column used as a group key).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The policy releases nothing of the column (suppressed), so it
    /// cannot be measured.
    #[error("column {column:?} is suppressed by the policy and cannot be measured")]
    Suppressed {
        /// The column.
        column: String,
    },
    /// The request itself is malformed: `field` and what is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The offending field, e.g. `metrics[1].column`.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// More groups than [`MAX_GROUPS`].
    #[error("more than {MAX_GROUPS} groups")]
    TooManyGroups,
    /// The grant's ε budget cannot cover the request.
    #[error("ε budget of grant {grant} exhausted: spent {spent}, requested {requested}, budget {budget}")]
    BudgetExhausted {
        /// The grant.
        grant: String,
        /// ε already spent.
        spent: f64,
        /// ε requested.
        requested: f64,
        /// The grant's budget.
        budget: f64,
    },
    /// The recorded ε spend is unreadable.
    #[error("recorded ε spend of grant {grant} is corrupt: {value:?}")]
    BudgetCorrupt {
        /// The grant.
        grant: String,
        /// The stored value.
        value: String,
    },
    /// The catalog failed.
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    /// Reading the dataset failed.
    #[error("reading the dataset failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The operating system's random source failed; nothing is released.
    #[error("the system random source failed")]
    Randomness,
}

fn invalid(field: impl Into<String>, problem: impl Into<String>) -> AggregateError {
    AggregateError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A validated aggregate: what to read, how to key it, what to compute.
/// No `Debug`: it holds the grant's pseudonymization key schedule.
pub struct AggregatePlan {
    group_by: Vec<String>,
    measures: Vec<String>,
    metrics: Vec<(Metric, Option<usize>)>,
    keys: Desensitizer,
    noise: Option<Noise>,
}

impl AggregatePlan {
    /// Checks `req` against the dataset `schema`, the `granted` columns and
    /// the `policy` for `tier`; group keys are desensitized with `key`.
    pub fn new(
        schema: &[ColumnSchema],
        granted: &[String],
        req: &AggregateRequest,
        tier: Tier,
        policy: &Policy,
        key: &PseudonymKey,
    ) -> Result<Self, AggregateError> {
        check_shape(req)?;
        let mut measures: Vec<String> = Vec::new();
        let mut metrics = Vec::with_capacity(req.metrics.len());
        for m in &req.metrics {
            let index = m.column.as_ref().map(|c| {
                measures.iter().position(|x| x == c).unwrap_or_else(|| {
                    measures.push(c.clone());
                    measures.len() - 1
                })
            });
            metrics.push((m.clone(), index));
        }
        let lookup = |names: &[String]| -> Result<Vec<ColumnSchema>, AggregateError> {
            names.iter().map(|c| column_schema(schema, c)).collect()
        };
        let group_schema: Vec<ColumnSchema> = lookup(&req.group_by)?;
        let measure_schema: Vec<ColumnSchema> = lookup(&measures)?;
        let mut all: Vec<ColumnSchema> = lookup(&req.filter_columns)?;
        all.extend(group_schema.iter().chain(&measure_schema).cloned());
        // Core first, so a core column is refused by name even when (as
        // always) the grant does not hold it.
        policy.plan_aggregate(&all, tier)?;
        if let Some(c) = all.iter().find(|c| !granted.contains(&c.name)) {
            let column = c.name.clone();
            return Err(AggregateError::NotGranted { column });
        }
        let measure_plan = policy.plan_aggregate(&measure_schema, tier)?;
        if let Some(p) = measure_plan
            .iter()
            .find(|p| p.technique == Technique::Suppress)
        {
            let column = p.name.clone();
            return Err(AggregateError::Suppressed { column });
        }
        let keys = Desensitizer::new(&group_schema, tier, policy, key)?;
        Ok(Self {
            group_by: req.group_by.clone(),
            measures,
            metrics,
            keys,
            noise: req.noise,
        })
    }

    /// The ε this aggregate spends (0 without noise).
    pub fn epsilon(&self) -> f64 {
        self.noise.map_or(0.0, |n| n.epsilon)
    }

    /// How each group-by column is desensitized, for the answer.
    pub fn group_plan(&self) -> &[ColumnPlan] {
        self.keys.plan()
    }
}

fn check_shape(req: &AggregateRequest) -> Result<(), AggregateError> {
    if req.metrics.is_empty() || req.metrics.len() > MAX_ITEMS {
        return Err(invalid(
            "metrics",
            format!("must hold 1 to {MAX_ITEMS} metrics"),
        ));
    }
    if req.group_by.len() > MAX_ITEMS {
        return Err(invalid(
            "group_by",
            format!("must hold at most {MAX_ITEMS} columns"),
        ));
    }
    for (i, c) in req.group_by.iter().enumerate() {
        if req.group_by[..i].contains(c) {
            return Err(invalid(
                format!("group_by[{i}]"),
                format!("{c:?} is repeated"),
            ));
        }
    }
    for (i, m) in req.metrics.iter().enumerate() {
        let field = format!("metrics[{i}].column");
        match (m.function, &m.column) {
            (MetricFn::Sum | MetricFn::Avg, None) => {
                return Err(invalid(field, "sum and avg need a column"));
            }
            (MetricFn::Sum | MetricFn::Avg, Some(_)) if req.noise.is_some() => {
                let problem = "noise applies to counts only: a sum's sensitivity is unbounded";
                return Err(invalid(format!("metrics[{i}].fn"), problem));
            }
            _ => {}
        }
    }
    if let Some(n) = req.noise {
        if !(n.epsilon.is_finite() && n.epsilon > 0.0) {
            return Err(invalid("noise.epsilon", "must be positive and finite"));
        }
    }
    Ok(())
}

fn column_schema(schema: &[ColumnSchema], column: &String) -> Result<ColumnSchema, AggregateError> {
    match schema.iter().find(|c| &c.name == column) {
        Some(c) => Ok(c.clone()),
        None => Err(AggregateError::UnknownColumn {
            column: column.clone(),
        }),
    }
}

/// One released cell: the desensitized group key and one value per metric
/// (`None` for a sum or average over no numeric value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The group-by values, as released.
    pub key: Vec<String>,
    /// The metric values, in request order.
    pub values: Vec<Option<f64>>,
}

/// The answer to an aggregate request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateResult {
    /// Group-by column names.
    pub group_by: Vec<String>,
    /// Metric labels (`count`, `sum(amount)`, …), in request order.
    pub metrics: Vec<String>,
    /// Cells of at least k rows, ordered by key.
    pub cells: Vec<Cell>,
    /// Cells withheld for having fewer than k rows.
    pub suppressed_cells: usize,
    /// The k applied.
    pub k: usize,
    /// The noise added to counts, if any.
    pub noise: Option<NoiseReport>,
}

/// What noise a result carries.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NoiseReport {
    /// The mechanism.
    pub mechanism: Mechanism,
    /// The ε spent by the request.
    pub epsilon: f64,
}

/// Per-cell running totals: rows, then per measure (sum, numeric, non-empty).
#[derive(Default)]
struct Totals {
    rows: u64,
    measures: Vec<(f64, u64, u64)>,
}

/// Runs `plan` over the dataset's `rows` table under the optional `filter`
/// (a `WHERE` body with its parameters, numbered from 1), suppressing
/// cells of fewer than `k` rows; count noise from the system CSPRNG.
pub fn run(
    conn: &Connection,
    plan: &AggregatePlan,
    filter: Option<&WhereClause>,
    k: usize,
) -> Result<AggregateResult, AggregateError> {
    let mut source = SystemSource::new();
    let result = run_with_source(conn, plan, filter, k, &mut source)?;
    if source.failed() {
        return Err(AggregateError::Randomness);
    }
    Ok(result)
}

/// As [`run`], drawing noise from `source`. Only tests and replays pass a
/// seeded source: a released aggregate's noise must be unpredictable.
pub fn run_with_source<S: UniformSource>(
    conn: &Connection,
    plan: &AggregatePlan,
    filter: Option<&WhereClause>,
    k: usize,
    source: &mut S,
) -> Result<AggregateResult, AggregateError> {
    let cells = scan(conn, plan, filter)?;
    let before = cells.len();
    let mut out = Vec::new();
    for (key, totals) in cells {
        if totals.rows < k as u64 {
            continue;
        }
        let values = plan
            .metrics
            .iter()
            .map(|(m, i)| metric_value(m.function, i.map(|i| totals.measures[i]), totals.rows))
            .map(|v| noisy(v, plan, source))
            .collect();
        out.push(Cell { key, values });
    }
    Ok(AggregateResult {
        group_by: plan.group_by.clone(),
        metrics: plan.metrics.iter().map(|(m, _)| m.label()).collect(),
        suppressed_cells: before - out.len(),
        cells: out,
        k,
        noise: plan.noise.map(|n| NoiseReport {
            mechanism: n.mechanism,
            epsilon: n.epsilon,
        }),
    })
}

fn metric_value(f: MetricFn, measure: Option<(f64, u64, u64)>, rows: u64) -> Option<f64> {
    match (f, measure) {
        (MetricFn::Count, None) => Some(rows as f64),
        (MetricFn::Count, Some((_, _, nonempty))) => Some(nonempty as f64),
        (MetricFn::Sum, Some((sum, n, _))) if n > 0 => Some(sum),
        (MetricFn::Avg, Some((sum, n, _))) if n > 0 => Some(sum / n as f64),
        _ => None,
    }
}

/// One pass over the selected rows: output key → totals.
fn scan(
    conn: &Connection,
    plan: &AggregatePlan,
    filter: Option<&WhereClause>,
) -> Result<BTreeMap<Vec<String>, Totals>, AggregateError> {
    let (sql, params) = statement(plan, filter);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
    let (g, m) = (plan.group_by.len(), plan.measures.len());
    let mut cells: BTreeMap<Vec<String>, Totals> = BTreeMap::new();
    let mut raw: Vec<String> = vec![String::new(); g + m];
    let mut key = Vec::with_capacity(g);
    while let Some(row) = rows.next()? {
        for (i, cell) in raw.iter_mut().enumerate() {
            read_cell(row.get_ref(i)?, cell);
        }
        let group: Vec<&str> = raw[..g].iter().map(String::as_str).collect();
        plan.keys.apply_row(&group, &mut key);
        if !cells.contains_key(&key) && cells.len() >= MAX_GROUPS {
            return Err(AggregateError::TooManyGroups);
        }
        let totals = cells.entry(key.clone()).or_default();
        totals.measures.resize(m, (0.0, 0, 0));
        totals.rows += 1;
        for (t, value) in totals.measures.iter_mut().zip(&raw[g..]) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            t.2 += 1;
            if let Some(x) = value.parse::<f64>().ok().filter(|x| x.is_finite()) {
                t.0 += x;
                t.1 += 1;
            }
        }
    }
    Ok(cells)
}

/// NULL and blobs read as empty; numbers as their text.
fn read_cell(v: ValueRef<'_>, out: &mut String) {
    out.clear();
    match v {
        ValueRef::Text(t) => out.push_str(std::str::from_utf8(t).unwrap_or("")),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(r) => {
            let _ = write!(out, "{r}");
        }
        ValueRef::Null | ValueRef::Blob(_) => {}
    }
}

fn statement(plan: &AggregatePlan, filter: Option<&WhereClause>) -> (String, Vec<Value>) {
    let quoted = |c: &String| format!("\"{}\"", c.replace('"', "\"\""));
    let mut columns: Vec<String> = plan
        .group_by
        .iter()
        .chain(&plan.measures)
        .map(quoted)
        .collect();
    if columns.is_empty() {
        columns.push("NULL".to_owned());
    }
    let (clause, params) = match filter {
        Some((sql, params)) => (format!(" WHERE ({sql})"), params.clone()),
        None => (String::new(), Vec::new()),
    };
    (
        format!("SELECT {} FROM rows{clause}", columns.join(", ")),
        params,
    )
}

#[cfg(test)]
mod tests;
