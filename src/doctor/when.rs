//! Dates and ages in words, for the report: `2025-03-01 04:05 UTC`, `3 days`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long ago `then` was at `now`, roughly (`40 seconds`, `12 minutes`, `5 hours`, `3 days`).
/// A `then` after `now` (clocks disagree) reads as `0 seconds`.
pub(super) fn age(then: SystemTime, now: SystemTime) -> String {
    span(now.duration_since(then).unwrap_or_default())
}

/// A duration in its largest whole unit.
pub(super) fn span(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (count, unit) = match seconds {
        0..120 => (seconds, "second"),
        120..7_200 => (seconds / 60, "minute"),
        7_200..172_800 => (seconds / 3_600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// `then` in UTC to the minute, `YYYY-MM-DD HH:MM UTC` (civil date from days since the epoch,
/// after Howard Hinnant's `civil_from_days`).
pub(super) fn utc(then: SystemTime) -> String {
    let seconds = then
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let (days, in_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        in_day / 3_600,
        in_day % 3_600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn dates_in_utc() {
        assert_eq!(utc(at(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc(at(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(utc(at(1_709_251_199)), "2024-02-29 23:59 UTC");
        assert_eq!(
            utc(at(1_735_689_600 + 3_600 * 4 + 60 * 5)),
            "2025-01-01 04:05 UTC"
        );
    }

    #[test]
    fn ages_in_words() {
        let now = at(10_000_000);
        assert_eq!(age(at(10_000_000 - 1), now), "1 second");
        assert_eq!(age(at(10_000_000 - 119), now), "119 seconds");
        assert_eq!(age(at(10_000_000 - 600), now), "10 minutes");
        assert_eq!(age(at(10_000_000 - 3 * 3_600), now), "3 hours");
        assert_eq!(age(at(10_000_000 - 3 * 86_400), now), "3 days");
        assert_eq!(age(at(10_000_000 + 50), now), "0 seconds");
        assert_eq!(span(Duration::from_secs(3_600)), "60 minutes");
    }
}
