//! Abnormal data-flow detection over the audit ledger.
//!
//! [`Monitor::observe`] is fed every ledger entry in order, with its index,
//! and returns the [`Alert`]s that entry completes. It keeps only counts,
//! times and ledger indexes (never values), per identity, per organization
//! and per peer address:
//!
//! - **row volume**: the rows an identity (or organization) took out by
//!   extracts and aggregates in the trailing hour, compared with the
//!   trailing median of the same measure at its previous accesses; above
//!   `rows_multiple` times the median (and at least `rows_min`) is an alert;
//! - **off hours**: a data access (extract, aggregate, import) outside the
//!   configured working hours, once per identity and local day;
//! - **denied burst**: `denied_burst` denied requests from one identity (or
//!   one address, for anonymous callers) within `denied_window_secs`;
//! - **many datasets**: one identity touching `datasets_per_identity`
//!   distinct datasets within `datasets_window_secs`;
//! - **near grant limit**: extracts returning at least
//!   `near_limit_fraction` of their grant's row limit, `near_limit_repeats`
//!   times under one grant;
//! - **handshake failures**: `handshake_failures` refused TLS handshakes
//!   from one address within `handshake_window_secs` (fed through
//!   [`Monitor::handshake_failure`], since refused handshakes never reach
//!   the ledger).
//!
//! It reads an entry as an [`Observed`]: only the fields above, borrowed
//! from the leaf bytes, so watching a busy ledger costs little.
//!
//! What it never does: write the ledger or the catalog (the API does), or
//! look at a value a request carried.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};

use crate::ledger::{Decision, EntryKind, LedgerEntry, Phase};

/// The thresholds, from `[monitoring]` in the server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Alert when an identity's rows in the trailing hour exceed this
    /// multiple of their trailing median.
    pub rows_multiple: f64,
    /// ... and are at least this many rows.
    pub rows_min: u64,
    /// Previous accesses needed before there is a baseline.
    pub rows_min_history: usize,
    /// Working hours start (local hour, inclusive).
    pub work_start_hour: u8,
    /// Working hours end (local hour, exclusive); equal to the start means
    /// every hour is a working hour.
    pub work_end_hour: u8,
    /// The local time zone as an offset from UTC in hours (Beijing: 8).
    pub utc_offset_hours: i8,
    /// Denied requests from one caller that make a burst.
    pub denied_burst: usize,
    /// ... within this many seconds.
    pub denied_window_secs: u64,
    /// Distinct datasets one identity may touch before an alert.
    pub datasets_per_identity: usize,
    /// ... within this many seconds.
    pub datasets_window_secs: u64,
    /// An extract of at least this fraction of its grant's row limit is
    /// near the limit.
    pub near_limit_fraction: f64,
    /// Near-limit extracts under one grant that make an alert.
    pub near_limit_repeats: usize,
    /// Refused TLS handshakes from one address that make an alert.
    pub handshake_failures: usize,
    /// ... within this many seconds.
    pub handshake_window_secs: u64,
    /// How often the server runs the monitor over new ledger entries
    /// (`GET /v1/alerts` also runs it first).
    pub interval_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            rows_multiple: 10.0,
            rows_min: 1000,
            rows_min_history: 3,
            work_start_hour: 8,
            work_end_hour: 20,
            utc_offset_hours: 8,
            denied_burst: 20,
            denied_window_secs: 60,
            datasets_per_identity: 10,
            datasets_window_secs: 3600,
            near_limit_fraction: 0.9,
            near_limit_repeats: 3,
            handshake_failures: 20,
            handshake_window_secs: 60,
            interval_secs: 5,
        }
    }
}

/// The kinds of alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertKind {
    /// Rows per hour far above the subject's own baseline.
    RowVolume,
    /// Data access outside working hours.
    OffHours,
    /// A burst of denied requests.
    DeniedBurst,
    /// One identity touching many datasets.
    ManyDatasets,
    /// Extracts near a grant's row limit, repeatedly.
    NearGrantLimit,
    /// Refused TLS handshakes from one address.
    HandshakeFailures,
}

impl AlertKind {
    /// Every kind, in metric order.
    pub const ALL: [AlertKind; 6] = [
        Self::RowVolume,
        Self::OffHours,
        Self::DeniedBurst,
        Self::ManyDatasets,
        Self::NearGrantLimit,
        Self::HandshakeFailures,
    ];

    /// The stable name, as stored, served and used as metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RowVolume => "row-volume",
            Self::OffHours => "off-hours",
            Self::DeniedBurst => "denied-burst",
            Self::ManyDatasets => "many-datasets",
            Self::NearGrantLimit => "near-grant-limit",
            Self::HandshakeFailures => "handshake-failures",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<AlertKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One alert: what, about whom, and the ledger entries that show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The kind.
    pub kind: AlertKind,
    /// `identity:<uri>`, `org:<org>`, `addr:<ip>` or `grant:<id>`.
    pub subject: String,
    /// The organization concerned (empty for an address).
    pub org: String,
    /// One line for a human.
    pub summary: String,
    /// Ledger indexes of the entries that make the case.
    pub evidence: Vec<u64>,
}

/// What the monitor reads of one ledger entry. Strings are borrowed from
/// the leaf bytes when they hold no escapes; the other fields of the entry
/// are skipped unparsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Observed<'a> {
    /// When it happened.
    #[serde(deserialize_with = "rfc3339")]
    pub time: OffsetDateTime,
    /// Request or event.
    pub kind: EntryKind,
    /// SPIFFE URI of the caller, or `anonymous` / `system`.
    #[serde(borrow)]
    pub identity: Cow<'a, str>,
    /// Peer socket address.
    #[serde(default)]
    pub peer: Option<String>,
    /// HTTP method.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// Matched route template.
    #[serde(borrow)]
    pub route: Cow<'a, str>,
    /// Ids of the resources touched.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Outcome.
    pub decision: Decision,
    /// Rows returned.
    #[serde(default)]
    pub rows: Option<u64>,
    /// Streamed responses: start or completion.
    #[serde(default)]
    pub phase: Option<Phase>,
}

impl<'a> Observed<'a> {
    /// Reads the monitored fields of one leaf (see [`LedgerEntry::to_leaf_bytes`]).
    pub fn parse(leaf: &'a [u8]) -> Result<Observed<'a>, serde_json::Error> {
        serde_json::from_slice(leaf)
    }
}

impl<'a> From<&'a LedgerEntry> for Observed<'a> {
    fn from(e: &'a LedgerEntry) -> Observed<'a> {
        Observed {
            time: e.time,
            kind: e.kind,
            identity: Cow::Borrowed(&e.identity),
            peer: e.peer.clone(),
            method: Cow::Borrowed(&e.method),
            route: Cow::Borrowed(&e.route),
            resources: e.resources.clone(),
            decision: e.decision,
            rows: e.rows,
            phase: e.phase,
        }
    }
}

/// An RFC 3339 time, read without copying the string when it can be borrowed.
fn rfc3339<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    let text = <Cow<'de, str> as Deserialize>::deserialize(d)?;
    OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
}

/// The routes through which data leaves the vault.
const OUTBOUND: &[&str] = &["/v1/extracts", "/v1/aggregates"];
/// The routes that read or write a dataset's rows.
const DATA_ROUTES: &[&str] = &["/v1/extracts", "/v1/aggregates", "/v1/datasets/{id}/rows"];
/// Longest baseline kept per subject.
const MAX_HISTORY: usize = 64;

/// Timed ledger indexes with a value, oldest first.
#[derive(Debug, Default)]
struct Window(VecDeque<(OffsetDateTime, u64, u64)>);

impl Window {
    fn push(&mut self, at: OffsetDateTime, index: u64, value: u64, span: Duration) {
        self.0.push_back((at, index, value));
        while self.0.front().is_some_and(|(t, _, _)| at - *t > span) {
            self.0.pop_front();
        }
    }

    fn sum(&self) -> u64 {
        self.0.iter().map(|(_, _, v)| v).sum()
    }

    fn indexes(&self) -> Vec<u64> {
        self.0.iter().map(|(_, i, _)| *i).collect()
    }
}

/// The row-volume state of one subject.
#[derive(Debug, Default)]
struct Volume {
    hour: Window,
    history: VecDeque<u64>,
    last_alert: Option<OffsetDateTime>,
}

/// The detector state (see the module documentation).
#[derive(Debug, Default)]
pub struct Monitor {
    thresholds: Thresholds,
    volume: BTreeMap<String, Volume>,
    off_hours: BTreeSet<(String, time::Date)>,
    denied: BTreeMap<String, Window>,
    datasets: BTreeMap<String, Window>,
    near_limit: BTreeMap<String, Vec<u64>>,
    handshakes: BTreeMap<String, VecDeque<OffsetDateTime>>,
}

/// `spiffe://<td>/<role>/<org>/<person>` → `<org>`.
pub fn org_of(identity: &str) -> Option<&str> {
    let rest = identity.strip_prefix("spiffe://")?;
    rest.split('/').nth(2)
}

fn secs(s: u64) -> Duration {
    Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000))
}

fn median(values: &VecDeque<u64>) -> u64 {
    let mut v: Vec<u64> = values.iter().copied().collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

impl Monitor {
    /// A monitor with `thresholds`.
    pub fn new(thresholds: Thresholds) -> Monitor {
        Monitor {
            thresholds,
            ..Monitor::default()
        }
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Feeds the entry at `index`; the alerts it completes. `row_limit`
    /// gives a grant's row limit by id.
    pub fn observe(
        &mut self,
        index: u64,
        entry: &Observed<'_>,
        row_limit: &dyn Fn(&str) -> Option<u64>,
    ) -> Vec<Alert> {
        if entry.kind != EntryKind::Request {
            return Vec::new();
        }
        let mut alerts = Vec::new();
        if entry.decision == Decision::Deny {
            alerts.extend(self.denied(index, entry));
            return alerts;
        }
        if entry.decision != Decision::Allow || entry.identity == "anonymous" {
            return alerts;
        }
        let org = org_of(&entry.identity).unwrap_or("").to_owned();
        alerts.extend(self.off_hours(index, entry, &org));
        alerts.extend(self.many_datasets(index, entry, &org));
        if let Some(rows) = outbound_rows(entry) {
            for subject in [format!("identity:{}", entry.identity), format!("org:{org}")] {
                alerts.extend(self.volume(index, entry.time, &subject, &org, rows));
            }
            alerts.extend(self.near_limit(index, entry, &org, rows, row_limit));
        }
        alerts
    }

    fn volume(
        &mut self,
        index: u64,
        at: OffsetDateTime,
        subject: &str,
        org: &str,
        rows: u64,
    ) -> Option<Alert> {
        let t = &self.thresholds;
        let v = self.volume.entry(subject.to_owned()).or_default();
        v.hour.push(at, index, rows, Duration::HOUR);
        let now = v.hour.sum();
        let base = median(&v.history);
        let quiet = v.last_alert.is_none_or(|last| at - last > Duration::HOUR);
        let enough = quiet && v.history.len() >= t.rows_min_history;
        let alert = (enough && now >= t.rows_min && now as f64 > t.rows_multiple * base as f64)
            .then(|| Alert {
                kind: AlertKind::RowVolume,
                subject: subject.to_owned(),
                org: org.to_owned(),
                summary: format!(
                    "{now} rows in the trailing hour, over {} times the trailing median {base}",
                    t.rows_multiple
                ),
                evidence: v.hour.indexes(),
            });
        if alert.is_some() {
            v.last_alert = Some(at);
        }
        v.history.push_back(now);
        if v.history.len() > MAX_HISTORY {
            v.history.pop_front();
        }
        alert
    }

    fn off_hours(&mut self, index: u64, entry: &Observed<'_>, org: &str) -> Option<Alert> {
        if !DATA_ROUTES.contains(&&*entry.route) {
            return None;
        }
        let t = &self.thresholds;
        let offset = UtcOffset::from_hms(t.utc_offset_hours, 0, 0).unwrap_or(UtcOffset::UTC);
        let local = entry.time.to_offset(offset);
        if within_hours(local.hour(), t.work_start_hour, t.work_end_hour) {
            return None;
        }
        let key = (entry.identity.to_string(), local.date());
        if !self.off_hours.insert(key) {
            return None;
        }
        Some(Alert {
            kind: AlertKind::OffHours,
            subject: format!("identity:{}", entry.identity),
            org: org.to_owned(),
            summary: format!(
                "{} {} at {:02}:{:02} local time, outside working hours {:02}:00-{:02}:00",
                entry.method,
                entry.route,
                local.hour(),
                local.minute(),
                t.work_start_hour,
                t.work_end_hour
            ),
            evidence: vec![index],
        })
    }

    fn denied(&mut self, index: u64, entry: &Observed<'_>) -> Option<Alert> {
        let subject = if entry.identity == "anonymous" {
            let peer = entry.peer.as_deref().unwrap_or("unknown");
            format!("addr:{}", ip_of(peer))
        } else {
            format!("identity:{}", entry.identity)
        };
        let t = &self.thresholds;
        let w = self.denied.entry(subject.clone()).or_default();
        w.push(entry.time, index, 1, secs(t.denied_window_secs));
        if w.0.len() < t.denied_burst {
            return None;
        }
        let evidence = w.indexes();
        w.0.clear();
        Some(Alert {
            kind: AlertKind::DeniedBurst,
            org: org_of(&entry.identity).unwrap_or("").to_owned(),
            summary: format!(
                "{} denied requests within {} s",
                evidence.len(),
                t.denied_window_secs
            ),
            subject,
            evidence,
        })
    }

    fn many_datasets(&mut self, index: u64, entry: &Observed<'_>, org: &str) -> Option<Alert> {
        let mut touched = entry
            .resources
            .iter()
            .filter_map(|r| r.strip_prefix("dataset:"))
            .peekable();
        // Without a dataset the window, and so its verdict, is unchanged.
        touched.peek()?;
        let t = &self.thresholds;
        let w = self.datasets.entry(entry.identity.to_string()).or_default();
        for d in touched {
            w.push(
                entry.time,
                index,
                dataset_tag(d),
                secs(t.datasets_window_secs),
            );
        }
        let distinct: BTreeSet<u64> = w.0.iter().map(|(_, _, d)| *d).collect();
        if distinct.len() < t.datasets_per_identity {
            return None;
        }
        let mut evidence = w.indexes();
        evidence.dedup();
        w.0.clear();
        Some(Alert {
            kind: AlertKind::ManyDatasets,
            subject: format!("identity:{}", entry.identity),
            org: org.to_owned(),
            summary: format!(
                "{} distinct datasets within {} s",
                distinct.len(),
                t.datasets_window_secs
            ),
            evidence,
        })
    }

    fn near_limit(
        &mut self,
        index: u64,
        entry: &Observed<'_>,
        org: &str,
        rows: u64,
        row_limit: &dyn Fn(&str) -> Option<u64>,
    ) -> Option<Alert> {
        let grant = entry
            .resources
            .iter()
            .find_map(|r| r.strip_prefix("grant:"))?;
        let limit = row_limit(grant)?;
        let t = &self.thresholds;
        if limit == 0 || (rows as f64) < t.near_limit_fraction * limit as f64 {
            return None;
        }
        let seen = self.near_limit.entry(grant.to_owned()).or_default();
        seen.push(index);
        if seen.len() < t.near_limit_repeats {
            return None;
        }
        let evidence = std::mem::take(seen);
        Some(Alert {
            kind: AlertKind::NearGrantLimit,
            subject: format!("grant:{grant}"),
            org: org.to_owned(),
            summary: format!(
                "{} extracts of at least {}% of the row limit {limit}, latest by {}",
                evidence.len(),
                (t.near_limit_fraction * 100.0).round(),
                entry.identity
            ),
            evidence,
        })
    }

    /// Counts one refused TLS handshake from `ip` at `at`; `Some(count)`
    /// when that makes `handshake_failures` within the window (the count
    /// then starts again).
    pub fn handshake_failure(&mut self, ip: &str, at: OffsetDateTime) -> Option<usize> {
        let t = &self.thresholds;
        let span = secs(t.handshake_window_secs);
        let q = self.handshakes.entry(ip.to_owned()).or_default();
        q.push_back(at);
        while q.front().is_some_and(|f| at - *f > span) {
            q.pop_front();
        }
        if q.len() < t.handshake_failures {
            return None;
        }
        let n = q.len();
        q.clear();
        Some(n)
    }
}

fn is_complete(p: Phase) -> bool {
    matches!(p, Phase::Complete { .. })
}

/// Rows that left the vault with this entry: a completed extract or an
/// aggregate answer.
fn outbound_rows(entry: &Observed<'_>) -> Option<u64> {
    if !OUTBOUND.contains(&&*entry.route) || entry.phase.is_some_and(|p| !is_complete(p)) {
        return None;
    }
    entry.rows
}

/// Whether local `hour` is within `[start, end)` (wrapping past midnight
/// when `start > end`; every hour when equal).
fn within_hours(hour: u8, start: u8, end: u8) -> bool {
    match start.cmp(&end) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Less => (start..end).contains(&hour),
        std::cmp::Ordering::Greater => hour >= start || hour < end,
    }
}

/// `1.2.3.4:567` or `[::1]:567` → the address without the port.
fn ip_of(peer: &str) -> &str {
    match peer.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => {
            host.trim_start_matches('[').trim_end_matches(']')
        }
        _ => peer,
    }
}

/// A stable small tag for a dataset id (to count distinct ids in a window).
fn dataset_tag(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAROL: &str = "spiffe://td/analyst/partner-a/carol";

    fn at(minute: i64) -> OffsetDateTime {
        // 10:00 in Beijing, a working hour with the defaults.
        OffsetDateTime::from_unix_timestamp(1_700_013_600).unwrap() + Duration::minutes(minute)
    }

    fn extract(minute: i64, rows: u64, grant: &str, dataset: &str) -> LedgerEntry {
        let mut e = LedgerEntry::new(
            EntryKind::Request,
            CAROL,
            "POST",
            "/v1/extracts",
            Decision::Allow,
        );
        e.time = at(minute);
        e.rows = Some(rows);
        e.phase = Some(Phase::Complete { start_index: 0 });
        e.resources = vec![format!("grant:{grant}"), format!("dataset:{dataset}")];
        e
    }

    fn run(m: &mut Monitor, entries: &[LedgerEntry], limit: u64) -> Vec<Alert> {
        let lookup = move |_: &str| Some(limit);
        entries
            .iter()
            .enumerate()
            .flat_map(|(i, e)| {
                let leaf = e.to_leaf_bytes().unwrap();
                let seen = Observed::parse(&leaf).unwrap();
                assert_eq!(seen, Observed::from(e), "the leaf reads back as the entry");
                m.observe(i as u64, &seen, &lookup)
            })
            .collect()
    }

    #[test]
    fn observed_reads_escaped_strings_and_skips_the_other_fields() {
        let mut e = LedgerEntry::new(
            EntryKind::Request,
            "spiffe://td/analyst/o\"q/p",
            "GET",
            "/v1/x",
            Decision::Deny,
        );
        e.details = Some(serde_json::json!({"nested": {"rows": 9}}));
        e.peer = Some("[::1]:4433".into());
        let leaf = e.to_leaf_bytes().unwrap();
        let seen = Observed::parse(&leaf).unwrap();
        assert_eq!(seen, Observed::from(&e));
        assert!(
            matches!(seen.identity, Cow::Owned(_)),
            "an escaped string is copied"
        );
        assert!(
            matches!(seen.route, Cow::Borrowed(_)),
            "a plain string is borrowed"
        );
        assert!(Observed::parse(b"{\"kind\":\"request\"}").is_err());
    }

    fn kinds(alerts: &[Alert]) -> Vec<(AlertKind, String)> {
        alerts.iter().map(|a| (a.kind, a.subject.clone())).collect()
    }

    #[test]
    fn row_volume_fires_on_a_jump_not_on_steady_use() {
        let steady: Vec<_> = (0..6).map(|i| extract(i, 2000, "g", "d")).collect();
        assert!(run(&mut Monitor::default(), &steady, 1_000_000).is_empty());
        let mut jump: Vec<_> = (0..5).map(|i| extract(i, 100, "g", "d")).collect();
        jump.push(extract(6, 9500, "g", "d"));
        jump.push(extract(7, 9500, "g", "d"));
        let alerts = run(&mut Monitor::default(), &jump, 1_000_000);
        assert_eq!(
            kinds(&alerts),
            [
                (AlertKind::RowVolume, format!("identity:{CAROL}")),
                (AlertKind::RowVolume, "org:partner-a".to_owned())
            ]
        );
        assert_eq!(alerts[0].evidence, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn off_hours_once_per_day() {
        let t = Thresholds {
            work_start_hour: 11,
            work_end_hour: 12,
            ..Thresholds::default()
        };
        let entries = [extract(0, 1, "g", "d"), extract(1, 1, "g", "d")];
        let alerts = run(&mut Monitor::new(t), &entries, 100);
        assert_eq!(
            kinds(&alerts),
            [(AlertKind::OffHours, format!("identity:{CAROL}"))]
        );
        assert!(run(&mut Monitor::default(), &entries, 100).is_empty());
    }

    #[test]
    fn denied_bursts_by_identity_and_address() {
        let t = Thresholds {
            denied_burst: 3,
            ..Thresholds::default()
        };
        let mut m = Monitor::new(t);
        let deny = |who: &str, s: i64| {
            let mut e = LedgerEntry::new(EntryKind::Request, who, "GET", "/x", Decision::Deny);
            e.time = at(0) + Duration::seconds(s);
            e.peer = Some("10.0.0.9:4431".into());
            e
        };
        let spread = [deny(CAROL, 0), deny(CAROL, 100), deny(CAROL, 200)];
        assert!(run(&mut m, &spread, 1).is_empty(), "outside the window");
        let burst = [
            deny("anonymous", 0),
            deny("anonymous", 1),
            deny("anonymous", 2),
        ];
        let alerts = run(&mut m, &burst, 1);
        assert_eq!(
            kinds(&alerts),
            [(AlertKind::DeniedBurst, "addr:10.0.0.9".to_owned())]
        );
        assert_eq!(alerts[0].evidence, [0, 1, 2]);
    }

    #[test]
    fn many_datasets_and_near_limits() {
        let t = Thresholds {
            datasets_per_identity: 3,
            near_limit_repeats: 2,
            ..Thresholds::default()
        };
        let spread = [
            extract(0, 10, "g1", "a"),
            extract(1, 10, "g2", "b"),
            extract(2, 95, "g3", "c"),
            extract(3, 96, "g3", "c"),
        ];
        let alerts = run(&mut Monitor::new(t.clone()), &spread, 100);
        assert_eq!(
            kinds(&alerts),
            [
                (AlertKind::ManyDatasets, format!("identity:{CAROL}")),
                (AlertKind::NearGrantLimit, "grant:g3".to_owned())
            ]
        );
        assert_eq!(alerts[1].evidence, [2, 3]);
        let calm = [
            extract(0, 10, "g1", "a"),
            extract(1, 50, "g1", "a"),
            extract(2, 89, "g1", "a"),
        ];
        assert!(run(&mut Monitor::new(t), &calm, 100).is_empty());
    }

    #[test]
    fn handshake_failures_from_one_address() {
        let mut m = Monitor::new(Thresholds {
            handshake_failures: 3,
            ..Thresholds::default()
        });
        assert_eq!(m.handshake_failure("10.0.0.1", at(0)), None);
        assert_eq!(m.handshake_failure("10.0.0.2", at(0)), None);
        assert_eq!(m.handshake_failure("10.0.0.1", at(0)), None);
        assert_eq!(m.handshake_failure("10.0.0.1", at(0)), Some(3));
        assert_eq!(m.handshake_failure("10.0.0.1", at(0)), None, "starts again");
    }

    #[test]
    fn helpers() {
        assert_eq!(org_of(CAROL), Some("partner-a"));
        assert_eq!(ip_of("[::1]:80"), "::1");
        assert_eq!(ip_of("1.2.3.4:5"), "1.2.3.4");
        assert!(within_hours(23, 22, 6) && within_hours(3, 22, 6) && !within_hours(12, 22, 6));
        assert!(within_hours(5, 7, 7));
        assert_eq!(AlertKind::parse("off-hours"), Some(AlertKind::OffHours));
        let t: Thresholds = toml_like("{\"denied_burst\": 4}");
        assert_eq!((t.denied_burst, t.rows_min), (4, 1000));
    }

    fn toml_like(json: &str) -> Thresholds {
        serde_json::from_str(json).unwrap()
    }
}
