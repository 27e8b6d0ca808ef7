//! Working-day arithmetic for service-level agreements.
//!
//! A working day is Monday to Friday on the calendar of China Standard
//! Time (UTC+8), where the zones are; public holidays and the weekend days
//! worked in their place (调休) are not modelled, so an SLA measured here
//! is never longer than the official one. "Due `n` working days after `t`"
//! keeps the time of day: each step moves one calendar day forward and then
//! past any weekend. `n = 0` is due at `t` itself.

use time::{Duration, OffsetDateTime, UtcOffset, Weekday};

/// China Standard Time.
const CST: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// Seconds in a day.
const DAY_SECONDS: i64 = 86_400;

fn is_weekend(t: OffsetDateTime) -> bool {
    matches!(
        t.to_offset(CST).weekday(),
        Weekday::Saturday | Weekday::Sunday
    )
}

/// The instant `days` working days after `start` (see the module
/// documentation), in UTC.
pub fn add_working_days(start: OffsetDateTime, days: u32) -> OffsetDateTime {
    let mut t = start.to_offset(CST);
    for _ in 0..days {
        t += Duration::days(1);
        while is_weekend(t) {
            t += Duration::days(1);
        }
    }
    t.to_offset(UtcOffset::UTC)
}

/// The working time between `from` and `to`, in days (weekend time does
/// not count); 0 when `to` is not after `from`.
pub fn working_days_between(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    if to <= from {
        return 0.0;
    }
    let mut seconds: i64 = 0;
    let mut cursor = from.to_offset(CST);
    while cursor < to {
        let next_midnight = cursor.replace_time(time::Time::MIDNIGHT) + Duration::days(1);
        let end = if next_midnight < to {
            next_midnight
        } else {
            to
        };
        if !is_weekend(cursor) {
            seconds += (end - cursor).whole_seconds();
        }
        cursor = end;
    }
    seconds as f64 / DAY_SECONDS as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    #[test]
    fn zero_days_is_due_at_once() {
        let sunday = t("2026-11-29T09:00:00Z");
        assert_eq!(add_working_days(sunday, 0), sunday);
    }

    #[test]
    fn adding_days_skips_the_weekend_in_beijing() {
        // Thursday 10:00 CST + 1 = Friday; + 2 = Monday.
        let thursday = t("2026-11-26T02:00:00Z");
        assert_eq!(add_working_days(thursday, 1), t("2026-11-27T02:00:00Z"));
        assert_eq!(add_working_days(thursday, 2), t("2026-11-30T02:00:00Z"));
        assert_eq!(add_working_days(thursday, 5), t("2026-12-03T02:00:00Z"));
        // Saturday 10:00 CST + 1 = Monday 10:00 CST.
        let saturday = t("2026-11-28T02:00:00Z");
        assert_eq!(add_working_days(saturday, 1), t("2026-11-30T02:00:00Z"));
        // Friday 23:30 UTC is already Saturday in Beijing: + 1 = Monday.
        let late_friday_utc = t("2026-11-27T23:30:00Z");
        assert_eq!(
            add_working_days(late_friday_utc, 1),
            t("2026-11-29T23:30:00Z")
        );
    }

    #[test]
    fn elapsed_working_time_leaves_out_weekends() {
        let friday_noon = t("2026-11-27T04:00:00Z");
        let monday_noon = t("2026-11-30T04:00:00Z");
        // Friday 12:00 to midnight, Monday midnight to 12:00: one day.
        assert!((working_days_between(friday_noon, monday_noon) - 1.0).abs() < 1e-9);
        let tuesday_noon = t("2026-12-01T04:00:00Z");
        assert!((working_days_between(monday_noon, tuesday_noon) - 1.0).abs() < 1e-9);
        let saturday = t("2026-11-28T04:00:00Z");
        let sunday = t("2026-11-29T04:00:00Z");
        assert_eq!(working_days_between(saturday, sunday), 0.0);
        assert_eq!(working_days_between(tuesday_noon, monday_noon), 0.0);
    }

    #[test]
    fn a_response_at_the_deadline_took_exactly_the_sla() {
        let start = t("2026-11-26T02:00:00Z");
        for days in 0..12 {
            let due = add_working_days(start, days);
            let took = working_days_between(start, due);
            assert!((took - f64::from(days)).abs() < 1e-9, "{days}: {took}");
        }
    }
}
