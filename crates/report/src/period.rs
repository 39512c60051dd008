//! The period a report covers: `--since` and `--until` text to Unix milliseconds, and
//! back to UTC text for output. Pure: the caller passes the current time in.

use costfloor_core::calendar::{civil_from_days, days_from_civil, days_in_month};

use crate::ReportError;

/// Milliseconds in an hour.
pub const MS_PER_HOUR: i64 = 3_600_000;
/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Parses a `--since` / `--until` value: `YYYY-MM-DD` (UTC midnight),
/// `YYYY-MM-DDTHH:MM:SSZ`, or a span back from `now_unix_ms` such as `30d` or `12h`.
/// `flag` names the flag in the error.
pub fn parse_time(flag: &'static str, text: &str, now_unix_ms: i64) -> Result<i64, ReportError> {
    let bad = || ReportError::BadTime {
        flag,
        value: text.to_string(),
    };
    if let Some(span_ms) = parse_span(text) {
        return now_unix_ms.checked_sub(span_ms).ok_or_else(bad);
    }
    let (date, time) = match text.split_once('T') {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let days = parse_date(date).ok_or_else(bad)?;
    let seconds = match time {
        None => 0,
        Some(time) => parse_time_of_day(time).ok_or_else(bad)?,
    };
    Ok(days * MS_PER_DAY + seconds * 1000)
}

/// `30d` or `12h` in milliseconds; `None` for anything else.
fn parse_span(text: &str) -> Option<i64> {
    let unit_ms = match text.as_bytes().last()? {
        b'd' => MS_PER_DAY,
        b'h' => MS_PER_HOUR,
        _ => return None,
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i64>().ok()?.checked_mul(unit_ms)
}

/// Days since 1970-01-01 of a valid `YYYY-MM-DD`.
fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let year: i64 = text[0..4].parse().ok()?;
    let month: i64 = text[5..7].parse().ok()?;
    let day: i64 = text[8..10].parse().ok()?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Seconds into the day of `HH:MM:SSZ`.
fn parse_time_of_day(text: &str) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let mut parts = text.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let part = parts.next()?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: i64 = part.parse().ok()?;
        (value <= max).then_some(value)
    };
    let (hours, minutes, seconds) = (field(23)?, field(59)?, field(59)?);
    if parts.next().is_some() {
        return None;
    }
    Some(hours * 3600 + minutes * 60 + seconds)
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (milliseconds dropped).
pub fn format_utc(unix_ms: i64) -> String {
    let (year, month, day) = civil_from_days(unix_ms.div_euclid(MS_PER_DAY));
    let seconds = unix_ms.rem_euclid(MS_PER_DAY) / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-29T00:00:00Z is day 20,786 (see the CLI's civil_dates test):
    // 20,786 × 86,400,000 ms.
    const NOV_29_MS: i64 = 20_786 * MS_PER_DAY;

    #[test]
    fn dates_times_and_spans() {
        assert_eq!(parse_time("--since", "2026-11-29", 0).unwrap(), NOV_29_MS);
        assert_eq!(
            parse_time("--since", "2026-11-29T13:05:09Z", 0).unwrap(),
            NOV_29_MS + (13 * 3600 + 5 * 60 + 9) * 1000
        );
        assert_eq!(parse_time("--since", "1970-01-01", 0).unwrap(), 0);
        assert_eq!(
            parse_time("--since", "2000-03-01", 0).unwrap(),
            11_017 * MS_PER_DAY
        );
        let now = NOV_29_MS + 5;
        assert_eq!(
            parse_time("--since", "30d", now).unwrap(),
            now - 30 * MS_PER_DAY
        );
        assert_eq!(
            parse_time("--until", "12h", now).unwrap(),
            now - 12 * MS_PER_HOUR
        );
        assert_eq!(format_utc(NOV_29_MS + 3_723_000), "2026-11-29T01:02:03Z");
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn anything_else_names_the_flag_and_what_is_allowed() {
        for bad in [
            "3w",
            "d",
            "-3d",
            "2026-02-30",
            "2026-13-01",
            "2026-1-29",
            "29/11/2026",
            "2026-11-29T25:00:00Z",
            "2026-11-29T10:00:00",
            "yesterday",
            "",
        ] {
            let err = parse_time("--since", bad, NOV_29_MS)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("--since {bad:?} is not allowed")) && err.contains("30d"),
                "{err}"
            );
        }
        assert!(parse_time("--since", "2024-02-29", 0).is_ok());
        assert!(parse_time("--since", "2026-02-29", 0).is_err());
    }
}
