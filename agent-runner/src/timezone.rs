//! Timezone resolution and time display for prompts (docs/agent-runner.md#timezone), on jiff's
//! bundled tzdb so it works in a `FROM scratch` image without `/usr/share/zoneinfo`.
//!
//! Deliberate change (runner quirk 9,
//! docs/agent-runner.md#decisions-on-the-quirks-of-reference-13): zone-less timestamps (SQLite
//! `datetime('now')`) are read as UTC, which is what SQLite wrote, instead of container-local time.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// Whether `name` is an IANA zone the bundled database knows (`IST-2`, `''` are not).
pub fn is_valid(name: &str) -> bool {
    !name.is_empty() && TimeZone::get(name).is_ok()
}

/// `name` when valid, else `UTC`.
pub fn resolve(name: &str) -> String {
    if is_valid(name) {
        name.to_string()
    } else {
        "UTC".to_string()
    }
}

/// The process zone: `TZ` when valid, else `UTC`.
pub fn from_env() -> String {
    resolve(&crate::env::get(crate::env::TZ).unwrap_or_default())
}

/// Parses a stored timestamp: RFC 3339 with `Z`/offset, or zone-less (read as UTC).
pub fn parse_stored(ts: &str) -> Option<Timestamp> {
    let ts = ts.trim();
    if let Ok(t) = ts.parse::<Timestamp>() {
        return Some(t);
    }
    let dt: DateTime = ts.replacen(' ', "T", 1).parse().ok()?;
    dt.to_zoned_datetime(TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// Renders `ts` in `tz` as `Jun 15, 2026, 3:30 PM`; an unparseable `ts` is returned unchanged.
pub fn format_local_time(ts: &str, tz: &str) -> String {
    let Some(t) = parse_stored(ts) else {
        return ts.to_string();
    };
    let zone = TimeZone::get(&resolve(tz)).unwrap_or(TimeZone::UTC);
    t.to_zoned_datetime(zone)
        .strftime("%b %-d, %Y, %-I:%M %p")
        .to_string()
}

/// Reads an agent-supplied time: with `Z` or an offset as given; naive → wall clock in `tz`
/// (invalid zone → UTC). `None` for anything else (e.g. natural language).
pub fn parse_zoned_to_utc(input: &str, tz: &str) -> Option<Timestamp> {
    let input = input.trim();
    if let Ok(t) = input.parse::<Timestamp>() {
        return Some(t);
    }
    if let Ok(z) = input.parse::<ZonedDateTime>() {
        return Some(z.timestamp());
    }
    let zone = TimeZone::get(&resolve(tz)).unwrap_or(TimeZone::UTC);
    let dt: DateTime = if input.len() == 10 {
        input
            .parse::<jiff::civil::Date>()
            .ok()?
            .to_datetime(jiff::civil::Time::midnight())
    } else {
        input.replacen(' ', "T", 1).parse().ok()?
    };
    dt.to_zoned_datetime(zone).ok().map(|z| z.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_utc_to_local_display() {
        let s = format_local_time("2026-02-04T18:30:00.000Z", "America/New_York");
        assert_eq!(s, "Feb 4, 2026, 1:30 PM");
    }

    #[test]
    fn handles_different_timezones() {
        let ts = "2026-06-15T12:00:00Z";
        assert!(format_local_time(ts, "America/New_York").contains("8:00"));
        assert!(format_local_time(ts, "Asia/Tokyo").contains("9:00"));
    }

    #[test]
    fn invalid_timezone_falls_back_to_utc() {
        assert_eq!(
            format_local_time("2026-06-15T12:00:00Z", "IST-2"),
            "Jun 15, 2026, 12:00 PM"
        );
    }

    #[test]
    fn accepts_valid_iana_identifiers() {
        for z in ["America/New_York", "UTC", "Asia/Tokyo", "Asia/Jerusalem"] {
            assert!(is_valid(z), "{z}");
        }
    }

    #[test]
    fn rejects_invalid_empty_and_garbage() {
        for z in ["IST-2", "XYZ+3", "", "NotATimezone"] {
            assert!(!is_valid(z), "{z}");
        }
    }

    #[test]
    fn resolve_returns_valid_or_utc() {
        assert_eq!(resolve("Asia/Tokyo"), "Asia/Tokyo");
        assert_eq!(resolve("IST-2"), "UTC");
        assert_eq!(resolve(""), "UTC");
    }

    #[test]
    fn zone_less_timestamps_are_utc() {
        // v2 rendered this as 12:02 PM in New York (quirk 9); it is 8:02 AM.
        assert_eq!(
            format_local_time("2026-06-15 12:02:00", "America/New_York"),
            "Jun 15, 2026, 8:02 AM"
        );
    }

    #[test]
    fn parse_zoned_passes_explicit_zones_through() {
        let t = |s: &str, z: &str| parse_zoned_to_utc(s, z).map(|t| t.to_string());
        assert_eq!(
            t("2026-01-15T09:00:00Z", "Asia/Tokyo").as_deref(),
            Some("2026-01-15T09:00:00Z")
        );
        assert_eq!(
            t("2026-01-15T09:00:00+02:00", "America/New_York").as_deref(),
            Some("2026-01-15T07:00:00Z")
        );
    }

    #[test]
    fn parse_zoned_reads_naive_as_wall_clock() {
        let t = |s: &str, z: &str| parse_zoned_to_utc(s, z).map(|t| t.to_string());
        assert_eq!(
            t("2026-01-15T09:00", "America/New_York").as_deref(),
            Some("2026-01-15T14:00:00Z")
        );
        assert_eq!(
            t("2026-01-15 21:00:00", "America/New_York").as_deref(),
            Some("2026-01-16T02:00:00Z")
        );
        assert_eq!(
            t("2026-01-15", "America/New_York").as_deref(),
            Some("2026-01-15T05:00:00Z")
        );
        assert_eq!(
            t("2026-01-15T09:00", "Asia/Tokyo").as_deref(),
            Some("2026-01-15T00:00:00Z")
        );
        assert_eq!(
            t("2026-01-15T09:00", "IST-2").as_deref(),
            Some("2026-01-15T09:00:00Z")
        );
        assert_eq!(t("tomorrow 9pm", "UTC"), None);
    }
}
