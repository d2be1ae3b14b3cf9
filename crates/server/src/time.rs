//! Wall-clock instants in the three spellings the APIs use, without a calendar crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant, in microseconds since the Unix epoch (what Swift's timestamps resolve).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(pub u64);

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
}

impl Instant {
    pub fn now() -> Self {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Instant(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    fn seconds(self) -> u64 {
        self.0 / 1_000_000
    }

    /// Howard Hinnant's `civil_from_days`: the proleptic Gregorian date of a day count.
    fn civil(self) -> Civil {
        let seconds = self.seconds();
        let days = i64::try_from(seconds / 86_400).unwrap_or(i64::MAX);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = u32::try_from(day_of_year - (153 * shifted_month + 2) / 5 + 1).unwrap_or(1);
        let month = u32::try_from(if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        })
        .unwrap_or(1);
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        let in_day = seconds % 86_400;
        Civil {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
        }
    }

    /// RFC 3339 in seconds, as Kubernetes writes `creationTimestamp`: `2026-01-02T03:04:05Z`.
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )
    }

    /// RFC 3339 in microseconds, as Kubernetes writes a `MicroTime`:
    /// `2026-01-02T03:04:05.000006Z`.
    pub fn rfc3339_micros(self) -> String {
        format!("{}Z", self.swift_iso())
    }

    /// ISO 8601 with microseconds and no zone, as Swift's listings write `last_modified`.
    pub fn swift_iso(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            c.year,
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            self.0 % 1_000_000
        )
    }

    /// The IMF-fixdate of HTTP headers: `Tue, 15 Nov 1994 08:12:31 GMT`.
    pub fn http_date(self) -> String {
        let c = self.civil();
        let weekday = WEEKDAYS[usize::try_from(self.seconds() / 86_400 % 7).unwrap_or(0)];
        let month = MONTHS[usize::try_from(c.month - 1).unwrap_or(0)];
        format!(
            "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
            c.day, c.year, c.hour, c.minute, c.second
        )
    }

    /// Swift's `X-Timestamp`: seconds with five decimals, zero-padded to 16 characters.
    pub fn swift_timestamp(self) -> String {
        format!("{:010}.{:05}", self.seconds(), self.0 % 1_000_000 / 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_spells_the_same_moment_in_every_format() {
        // 2014-01-15T16:41:49.390270Z, a Wednesday.
        let instant = Instant(1_389_804_109_390_270);
        assert_eq!(instant.rfc3339(), "2014-01-15T16:41:49Z");
        assert_eq!(instant.rfc3339_micros(), "2014-01-15T16:41:49.390270Z");
        assert_eq!(instant.swift_iso(), "2014-01-15T16:41:49.390270");
        assert_eq!(instant.http_date(), "Wed, 15 Jan 2014 16:41:49 GMT");
        assert_eq!(instant.swift_timestamp(), "1389804109.39027");
    }

    #[test]
    fn leap_days_and_year_ends_fall_on_the_right_dates() {
        assert_eq!(
            Instant(951_782_400_000_000).rfc3339(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Instant(1_735_689_599_000_000).rfc3339(),
            "2024-12-31T23:59:59Z"
        );
        assert_eq!(Instant(0).http_date(), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
