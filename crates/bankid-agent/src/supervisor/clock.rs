//! Calendar dates and times from Unix milliseconds, for the CSV export (ISO 8601, UTC) and the
//! charts' hour and day labels (the supervisor's local offset): a few lines of the proleptic
//! Gregorian calendar rather than a time-zone library, because nothing here needs more.

/// A point in time split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub milli: u32,
}

/// The calendar fields of `ms` (Unix milliseconds) on a clock `offset_min` east of UTC.
pub(crate) fn civil(ms: i64, offset_min: i32) -> Civil {
    let ms = ms + i64::from(offset_min) * 60_000;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Days since 1970-01-01 to a date: eras of 400 years (146 097 days), years from March.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (in_day / 3_600_000) as u32,
        minute: (in_day / 60_000 % 60) as u32,
        second: (in_day / 1_000 % 60) as u32,
        milli: (in_day % 1_000) as u32,
    }
}

/// `2026-12-01T10:17:27.123Z`.
pub(crate) fn iso_utc(ms: i64) -> String {
    let c = civil(ms, 0);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.milli
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_utc(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
        assert_eq!(iso_utc(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999Z");
        // An hour east of UTC (Swedish winter time), across midnight and the year.
        let c = civil(1_798_761_600_000 - 1_800_000, 60);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute),
            (2027, 1, 1, 0, 30)
        );
    }
}
