//! Event time: UTC timestamps with nanosecond precision, and durations
//! written the way Prometheus and Alertmanager users write them (`30s`,
//! `5m`, `1h30m`).
//!
//! Timestamps are parsed from and printed as RFC 3339 by hand rather than
//! through a date library: the engine needs only UTC instants, the parser is
//! on the hot path, and the printed form must be stable byte for byte (the
//! fraction is trimmed of trailing zeros, as Go's `RFC3339Nano` does, so an
//! Alertmanager timestamp survives a round trip unchanged).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// An instant in UTC, as nanoseconds since the Unix epoch.
///
/// The representable range is roughly the years 1678 to 2261. Go's zero time
/// (`0001-01-01T00:00:00Z`), which Alertmanager uses for "no end", is not an
/// instant: [`Timestamp::parse_rfc3339`] maps it to `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a timestamp could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// The text is not RFC 3339 (`2024-05-01T12:00:00Z`, optional fraction,
    /// `Z` or a numeric offset).
    Syntax,
    /// A field is outside its range (month 13, minute 61, ...).
    FieldRange,
    /// The instant is outside the years 1678..2261 that nanoseconds cover.
    OutOfRange,
}

// Written by hand so that the bottom crate depends on serde alone.
impl std::error::Error for TimeError {}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeError::Syntax => "not an RFC 3339 timestamp",
            TimeError::FieldRange => "a date or time field is out of range",
            TimeError::OutOfRange => "timestamp outside the years 1678..2261",
        })
    }
}

impl Timestamp {
    /// The earliest representable instant; sorts before every real one.
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    /// The latest representable instant; used as "never".
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    /// Builds a timestamp from whole seconds since the Unix epoch.
    pub const fn from_unix_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `d`, saturating at [`Timestamp::MAX`].
    pub fn plus(self, d: Duration) -> Self {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }

    /// This instant moved back by `d`, saturating at [`Timestamp::MIN`].
    pub fn minus(self, d: Duration) -> Self {
        let nanos = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(nanos))
    }

    /// The time from `earlier` to `self`, zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        let nanos = self.0.saturating_sub(earlier.0).max(0);
        Duration::from_nanos(nanos.unsigned_abs())
    }

    /// Parses an RFC 3339 timestamp. Returns `Ok(None)` for Go's zero time
    /// (any instant in year 1 or earlier), which Alertmanager sends as "no
    /// end time".
    pub fn parse_rfc3339(text: &str) -> Result<Option<Timestamp>, TimeError> {
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(TimeError::Syntax);
        }
        let year = digits(b, 0, 4)?;
        expect(b, 4, b'-')?;
        let month = digits(b, 5, 2)?;
        expect(b, 7, b'-')?;
        let day = digits(b, 8, 2)?;
        if !matches!(b[10], b'T' | b't' | b' ') {
            return Err(TimeError::Syntax);
        }
        let hour = digits(b, 11, 2)?;
        expect(b, 13, b':')?;
        let minute = digits(b, 14, 2)?;
        expect(b, 16, b':')?;
        let second = digits(b, 17, 2)?;
        let (fraction, rest) = parse_fraction(b, 19)?;
        let offset_secs = parse_offset(b, rest)?;

        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(TimeError::FieldRange);
        }
        // Leap seconds (:60) are folded into the next second, as Go does.
        if hour > 23 || minute > 59 || second > 60 {
            return Err(TimeError::FieldRange);
        }
        if year <= 1 {
            return Ok(None);
        }
        let days = days_from_civil(year, month, day);
        let secs = days * SECS_PER_DAY + hour * 3600 + minute * 60 + second - offset_secs;
        let nanos = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(fraction);
        let nanos = i64::try_from(nanos).map_err(|_| TimeError::OutOfRange)?;
        Ok(Some(Timestamp(nanos)))
    }
}

fn digits(b: &[u8], start: usize, len: usize) -> Result<i64, TimeError> {
    let mut value = 0i64;
    for &c in b.get(start..start + len).ok_or(TimeError::Syntax)? {
        if !c.is_ascii_digit() {
            return Err(TimeError::Syntax);
        }
        value = value * 10 + i64::from(c - b'0');
    }
    Ok(value)
}

fn expect(b: &[u8], at: usize, want: u8) -> Result<(), TimeError> {
    if b.get(at) == Some(&want) { Ok(()) } else { Err(TimeError::Syntax) }
}

/// Reads an optional `.ddddddddd` fraction; digits past nanoseconds are
/// accepted and truncated. Returns the nanoseconds and the next index.
fn parse_fraction(b: &[u8], at: usize) -> Result<(i64, usize), TimeError> {
    if b.get(at) != Some(&b'.') {
        return Ok((0, at));
    }
    let mut i = at + 1;
    let mut nanos = 0i64;
    let mut scale = 100_000_000i64;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        nanos += i64::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == at + 1 {
        return Err(TimeError::Syntax);
    }
    Ok((nanos, i))
}

fn parse_offset(b: &[u8], at: usize) -> Result<i64, TimeError> {
    match b.get(at) {
        Some(b'Z' | b'z') if b.len() == at + 1 => Ok(0),
        Some(&sign @ (b'+' | b'-')) if b.len() == at + 6 => {
            let hours = digits(b, at + 1, 2)?;
            expect(b, at + 3, b':')?;
            let minutes = digits(b, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return Err(TimeError::FieldRange);
            }
            let secs = hours * 3600 + minutes * 60;
            Ok(if sign == b'+' { secs } else { -secs })
        }
        _ => Err(TimeError::Syntax),
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl Timestamp {
    /// Writes the RFC 3339 form into `buf` and returns its length (at most
    /// 30 bytes). Hand-rolled because events print many timestamps and
    /// `fmt` machinery dominated the cost.
    fn render(self, buf: &mut [u8; 32]) -> usize {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let (year, month, day) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
        let sod = secs.rem_euclid(SECS_PER_DAY);
        let year = year.clamp(0, 9999);
        let fields = [(year, 4, b'-'), (month, 2, b'-'), (day, 2, b'T')];
        let time = [(sod / 3600, 2, b':'), (sod / 60 % 60, 2, b':'), (sod % 60, 2, 0)];
        let mut at = 0;
        for (value, width, sep) in fields.into_iter().chain(time) {
            put_digits(buf, at, value, width);
            at += width;
            if sep != 0 {
                buf[at] = sep;
                at += 1;
            }
        }
        if nanos != 0 {
            let mut digits = 9;
            let mut frac = nanos;
            while frac % 10 == 0 {
                frac /= 10;
                digits -= 1;
            }
            buf[at] = b'.';
            put_digits(buf, at + 1, frac, digits);
            at += 1 + digits;
        }
        buf[at] = b'Z';
        at + 1
    }
}

fn put_digits(buf: &mut [u8; 32], at: usize, mut value: i64, width: usize) {
    for i in (0..width).rev() {
        buf[at + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with the fraction trimmed of trailing zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 32];
        let len = self.render(&mut buf);
        // The buffer holds only ASCII digits and separators.
        f.write_str(std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 32];
        let len = self.render(&mut buf);
        s.serialize_str(std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        match Timestamp::parse_rfc3339(&text) {
            Ok(Some(ts)) => Ok(ts),
            Ok(None) => Err(serde::de::Error::custom("zero time is not an instant")),
            Err(e) => Err(serde::de::Error::custom(format!("{e}: {text:?}"))),
        }
    }
}

/// A duration written as Prometheus writes them: one or more
/// `<number><unit>` pairs with units `ms`, `s`, `m`, `h`, `d`, `w`, largest
/// first (`1h30m`, `90s`, `500ms`). Serialises back to the same form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// Parses `1h30m`-style text; the error says what is wrong.
    pub fn parse(text: &str) -> Result<DurationSpec, String> {
        const UNITS: [(&str, u64); 6] = [
            ("w", 7 * 86_400_000),
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ];
        if text == "0" {
            return Ok(DurationSpec(Duration::ZERO));
        }
        let mut rest = text;
        let mut total_ms: u64 = 0;
        let mut last_rank = usize::MAX;
        if rest.is_empty() {
            return Err("empty duration".to_owned());
        }
        while !rest.is_empty() {
            let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits_len == 0 {
                return Err(format!("{text:?} is not a duration like 30s, 5m or 1h30m"));
            }
            let (number, tail) = rest.split_at(digits_len);
            let unit_len = tail.bytes().take_while(u8::is_ascii_alphabetic).count();
            let (unit, tail) = tail.split_at(unit_len);
            if unit.is_empty() {
                return Err(format!("{text:?} is not a duration like 30s, 5m or 1h30m"));
            }
            let rank = UNITS.iter().position(|(name, _)| *name == unit).ok_or_else(|| {
                format!("{text:?}: unknown unit {unit:?} (use ms, s, m, h, d, w)")
            })?;
            if last_rank != usize::MAX && rank <= last_rank {
                return Err(format!("{text:?}: units must go from largest to smallest"));
            }
            last_rank = rank;
            let value: u64 = number.parse().map_err(|_| format!("{text:?}: number too large"))?;
            total_ms = value
                .checked_mul(UNITS[rank].1)
                .and_then(|ms| total_ms.checked_add(ms))
                .ok_or_else(|| format!("{text:?}: duration too large"))?;
            rest = tail;
        }
        Ok(DurationSpec(Duration::from_millis(total_ms)))
    }

    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for DurationSpec {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        DurationSpec::parse(text)
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = u64::try_from(self.0.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000)]
            .into_iter()
            .chain([("m", 60_000), ("s", 1_000), ("ms", 1)])
        {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DurationSpec::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        match Timestamp::parse_rfc3339(text) {
            Ok(Some(t)) => t,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        assert_eq!(ts("2024-05-01T12:00:00Z"), ts("2024-05-01T14:00:00+02:00"));
        assert_eq!(ts("2024-05-01T12:00:00Z"), ts("2024-05-01T07:30:00-04:30"));
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_nanos(), 0);
        assert_eq!(ts("2000-03-01T00:00:00Z").unix_nanos() / NANOS_PER_SEC, 951_868_800);
    }

    #[test]
    fn keeps_nanoseconds_and_prints_them_back_trimmed() {
        let t = ts("2024-02-29T23:59:59.123456789Z");
        assert_eq!(t.to_string(), "2024-02-29T23:59:59.123456789Z");
        assert_eq!(ts("2024-01-01T00:00:00.500Z").to_string(), "2024-01-01T00:00:00.5Z");
        assert_eq!(ts("2024-01-01T00:00:00.000Z").to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(
            ts("2024-01-01T00:00:00.1234567891Z").to_string(),
            "2024-01-01T00:00:00.123456789Z"
        );
    }

    #[test]
    fn the_extreme_instants_round_trip_through_text() {
        for t in [Timestamp::MIN, Timestamp::MAX, Timestamp::from_unix_nanos(-1)] {
            assert_eq!(ts(&t.to_string()), t, "{t}");
        }
    }

    #[test]
    fn go_zero_time_means_no_instant() {
        assert_eq!(Timestamp::parse_rfc3339("0001-01-01T00:00:00Z"), Ok(None));
    }

    #[test]
    fn rejects_malformed_and_out_of_range_text() {
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00:00+0200",
            "2024-05-01X12:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00Zjunk",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), Err(TimeError::Syntax), "{bad}");
        }
        for bad in ["2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z"] {
            assert_eq!(Timestamp::parse_rfc3339(bad), Err(TimeError::FieldRange), "{bad}");
        }
        assert_eq!(Timestamp::parse_rfc3339("9999-01-01T00:00:00Z"), Err(TimeError::OutOfRange));
    }

    #[test]
    fn civil_conversion_round_trips_across_centuries() {
        for days in (-100_000..100_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn durations_parse_in_prometheus_form_and_print_back() {
        let cases = [
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("1d", 86_400_000),
            ("2w", 1_209_600_000),
            ("0", 0),
        ];
        for (text, ms) in cases {
            let d = DurationSpec::parse(text).unwrap_or_default();
            assert_eq!(d.0, Duration::from_millis(ms), "{text}");
        }
        assert_eq!(DurationSpec(Duration::from_millis(5_400_500)).to_string(), "1h30m500ms");
        for bad in ["", "5", "5x", "m5", "30m1h", "1h1h", "-5m"] {
            assert!(DurationSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
