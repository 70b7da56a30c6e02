//! Swedish personal identity numbers (personnummer) and coordination numbers
//! (samordningsnummer): parsing, validation and masked display.
//!
//! [`Personnummer`]'s `Debug` and `Display` print the masked form `YYMMDD-XXXX`; the whole
//! number is only reachable through [`Personnummer::as_str12`] (for the wire) and
//! [`Personnummer::display`] (for the agent's result text).

use std::fmt;

/// Why a personal number was rejected. Each kind of mistake has its own variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PnrError {
    /// Nothing was entered.
    Empty,
    /// A character other than digits, one separator (`-`/`+`) and surrounding spaces.
    BadCharacter,
    /// Not 10 or 12 digits (DTMF input: not exactly 12). Holds the digit count.
    WrongLength(usize),
    /// A separator in the wrong place, more than one, or `+` on a 12-digit number.
    BadSeparator,
    /// The month or day does not exist (coordination numbers: day + 60).
    InvalidDate,
    /// The birth date lies in the future.
    FutureDate,
    /// The Luhn check digit does not match.
    BadCheckDigit,
}

impl PnrError {
    /// A short English explanation (no digits of the input).
    pub fn message(self) -> &'static str {
        match self {
            PnrError::Empty => "no personal number was given",
            PnrError::BadCharacter => "the personal number may only contain digits and one - or +",
            PnrError::WrongLength(_) => {
                "a personal number has 12 digits (YYYYMMDDNNNN) or 10 (YYMMDD-NNNN)"
            }
            PnrError::BadSeparator => "the separator must stand before the last four digits",
            PnrError::InvalidDate => "the personal number does not contain a valid date",
            PnrError::FutureDate => "the personal number's date lies in the future",
            PnrError::BadCheckDigit => "the check digit (the last digit) is wrong",
        }
    }

    /// A stable identifier, e.g. for the agent page's messages: `empty`, `bad_character`, …
    pub fn code(self) -> &'static str {
        match self {
            PnrError::Empty => "empty",
            PnrError::BadCharacter => "bad_character",
            PnrError::WrongLength(_) => "wrong_length",
            PnrError::BadSeparator => "bad_separator",
            PnrError::InvalidDate => "invalid_date",
            PnrError::FutureDate => "future_date",
            PnrError::BadCheckDigit => "bad_check_digit",
        }
    }
}

impl fmt::Display for PnrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PnrError::WrongLength(n) => write!(f, "{} (got {n} digits)", self.message()),
            _ => f.write_str(self.message()),
        }
    }
}

impl std::error::Error for PnrError {}

/// A valid 12-digit personal or coordination number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Personnummer {
    digits: [u8; 12],
}

/// A calendar date (year, month, day).
pub type Date = (u32, u32, u32);

/// Today's date in UTC, from the system clock.
pub fn today() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
pub(crate) fn civil_from_days(z: i64) -> Date {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as u32, m as u32, d as u32)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    }
}

fn luhn_check_digit(nine: &[u8]) -> u8 {
    let sum: u32 = nine
        .iter()
        .enumerate()
        .map(|(i, &d)| {
            let p = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
            p / 10 + p % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// The birth year of a 10-digit number with year `yy`, month `mm` and day `dd` (coordination
/// numbers: + 60), as the separator says on `today`:
/// - `+`: the person has turned, or turns this year, 100 — the latest year ending in `yy` that
///   is at least 100 years before this one (on 2026-11-26, `261231+` is 1926-12-31);
/// - `-`: younger — the latest year ending in `yy` whose date is not in the future (and if even
///   this year's is, a century earlier: the form a person born later this year cannot have).
fn century_for(yy: u32, mm: u32, dd: u32, plus: bool, today: Date) -> u32 {
    let (ty, tm, td) = today;
    // The latest year ≤ `y` that ends in `yy` (the distance is taken mod 100).
    // (0 when there is none: validation then rejects the year.)
    let latest_at_most = |y: u32| y.saturating_sub((y + 100 - yy % 100) % 100);
    if plus {
        return latest_at_most(ty.saturating_sub(100));
    }
    let day = if dd > 60 { dd - 60 } else { dd };
    let year = latest_at_most(ty);
    if (year, mm, day) > (ty, tm, td) {
        year.saturating_sub(100)
    } else {
        year
    }
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &x| a * 10 + u32::from(x))
}

impl Personnummer {
    /// Parses what an agent types: 12 digits (`YYYYMMDDNNNN`, optionally `YYYYMMDD-NNNN`) or
    /// 10 digits (`YYMMDDNNNN`, `YYMMDD-NNNN`, `YYMMDD+NNNN` for people aged 100 or more),
    /// with surrounding spaces allowed. The century of a 10-digit number is chosen from the
    /// separator and today's date.
    pub fn parse(input: &str) -> Result<Personnummer, PnrError> {
        Personnummer::parse_at(input, today())
    }

    /// As [`Personnummer::parse`], with "today" given (for tests and reproducible tools).
    pub fn parse_at(input: &str, today: Date) -> Result<Personnummer, PnrError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(PnrError::Empty);
        }
        let mut digits = Vec::with_capacity(12);
        let mut sep: Option<(usize, char)> = None;
        for c in s.chars() {
            match c {
                '0'..='9' => digits.push(c as u8 - b'0'),
                '-' | '+' if sep.is_none() => sep = Some((digits.len(), c)),
                '-' | '+' => return Err(PnrError::BadSeparator),
                _ => return Err(PnrError::BadCharacter),
            }
        }
        if digits.len() != 10 && digits.len() != 12 {
            return Err(PnrError::WrongLength(digits.len()));
        }
        if let Some((pos, c)) = sep {
            if pos != digits.len() - 4 || (digits.len() == 12 && c == '+') {
                return Err(PnrError::BadSeparator);
            }
        }
        let full: Vec<u8> = if digits.len() == 12 {
            digits
        } else {
            let year = century_for(
                num(&digits[0..2]),
                num(&digits[2..4]),
                num(&digits[4..6]),
                matches!(sep, Some((_, '+'))),
                today,
            );
            let mut v: Vec<u8> = vec![(year / 1000) as u8, (year / 100 % 10) as u8];
            v.extend_from_slice(&digits);
            v
        };
        let pnr = Personnummer::validate(&full)?;
        let (y, m, d) = pnr.birth_date();
        if (y, m, d) > today {
            return Err(PnrError::FutureDate);
        }
        Ok(pnr)
    }

    /// Parses DTMF input: exactly 12 digits, nothing else (a `#` terminator is not part of it).
    pub fn parse_dtmf(input: &str) -> Result<Personnummer, PnrError> {
        if input.is_empty() {
            return Err(PnrError::Empty);
        }
        if !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PnrError::BadCharacter);
        }
        if input.len() != 12 {
            return Err(PnrError::WrongLength(input.len()));
        }
        let digits: Vec<u8> = input.bytes().map(|b| b - b'0').collect();
        let pnr = Personnummer::validate(&digits)?;
        if pnr.birth_date() > today() {
            return Err(PnrError::FutureDate);
        }
        Ok(pnr)
    }

    fn validate(d: &[u8]) -> Result<Personnummer, PnrError> {
        let year = num(&d[0..4]);
        let month = num(&d[4..6]);
        let mut day = num(&d[6..8]);
        if day > 60 {
            day -= 60;
        }
        if year < 1800 || day == 0 || day > days_in_month(year, month) {
            return Err(PnrError::InvalidDate);
        }
        if luhn_check_digit(&d[2..11]) != d[11] {
            return Err(PnrError::BadCheckDigit);
        }
        let mut digits = [0u8; 12];
        for (o, i) in digits.iter_mut().zip(d) {
            *o = b'0' + i;
        }
        Ok(Personnummer { digits })
    }

    /// The 12 digits `YYYYMMDDNNNN`, as BankID takes them. Personal data: for the wire only.
    pub fn as_str12(&self) -> &str {
        std::str::from_utf8(&self.digits).unwrap_or("")
    }

    /// `YYMMDD-NNNN` (`+` from the year the person turns 100), the form agents see.
    pub fn display(&self) -> String {
        self.display_at(today())
    }

    /// As [`Personnummer::display`] on a given day (for tests and reproducible tools).
    pub fn display_at(&self, today: Date) -> String {
        let s = self.as_str12();
        let (y, _, _) = self.birth_date();
        let sep = if today.0 >= y + 100 { '+' } else { '-' };
        format!("{}{sep}{}", &s[2..8], &s[8..12])
    }

    /// `YYMMDD-XXXX`: safe for logs.
    pub fn masked(&self) -> String {
        format!("{}-XXXX", &self.as_str12()[2..8])
    }

    /// Whether this is a coordination number (day + 60).
    pub fn is_coordination_number(&self) -> bool {
        num(&self.digit_values()[6..8]) > 60
    }

    /// The birth date (for coordination numbers, with 60 taken off the day).
    pub fn birth_date(&self) -> Date {
        let d = self.digit_values();
        let mut day = num(&d[6..8]);
        if day > 60 {
            day -= 60;
        }
        (num(&d[0..4]), num(&d[4..6]), day)
    }

    fn digit_values(&self) -> [u8; 12] {
        self.digits.map(|b| b - b'0')
    }
}

impl fmt::Debug for Personnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Personnummer({})", self.masked())
    }
}

impl fmt::Display for Personnummer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks anything that looks like a personal number's last four digits: keeps the first
/// six digits of the last ten, replaces the rest with `X`. For numbers BankID returns as text.
pub fn mask_str(s: &str) -> String {
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 10 {
        let tail = &digits[digits.len() - 10..];
        format!("{}-XXXX", &tail[..6])
    } else {
        "XXXXXX-XXXX".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = (2026, 11, 25);

    #[test]
    fn accepts_the_documented_examples_in_every_form() {
        for s in [
            "199908072391",
            "19990807-2391",
            "9908072391",
            "990807-2391",
            " 990807-2391 ",
        ] {
            let p = Personnummer::parse_at(s, TODAY).unwrap();
            assert_eq!(p.as_str12(), "199908072391", "{s}");
        }
        let c = Personnummer::parse_at("196801642395", TODAY).unwrap();
        assert!(c.is_coordination_number());
        assert_eq!(c.birth_date(), (1968, 1, 4));
    }

    #[test]
    fn each_kind_of_mistake_has_its_own_error() {
        let e = |s| Personnummer::parse_at(s, TODAY).unwrap_err();
        assert_eq!(e(""), PnrError::Empty);
        assert_eq!(e("   "), PnrError::Empty);
        assert_eq!(e("19990807a391"), PnrError::BadCharacter);
        assert_eq!(e("1999080723"), PnrError::InvalidDate); // 10 digits: month 99
        assert_eq!(e("19990807239"), PnrError::WrongLength(11));
        assert_eq!(e("9908-072391"), PnrError::BadSeparator);
        assert_eq!(e("990807--2391"), PnrError::BadSeparator);
        assert_eq!(e("19990807+2391"), PnrError::BadSeparator);
        assert_eq!(e("199913072391"), PnrError::InvalidDate);
        assert_eq!(e("199902302391"), PnrError::InvalidDate);
        assert_eq!(e("199908072392"), PnrError::BadCheckDigit);
    }

    #[test]
    fn future_dates_are_rejected() {
        // 2030-01-01 with a correct check digit.
        let d: Vec<u8> = "300101000".bytes().map(|b| b - b'0').collect();
        let s = format!("20300101000{}", luhn_check_digit(&d));
        assert_eq!(
            Personnummer::parse_at(&s, TODAY).unwrap_err(),
            PnrError::FutureDate
        );
    }

    #[test]
    fn century_follows_separator_and_today() {
        // 10 digits with '-': the most recent year not in the future.
        assert_eq!(
            Personnummer::parse_at("990807-2391", TODAY)
                .unwrap()
                .birth_date()
                .0,
            1999
        );
        // '+' means 100 years earlier: a centenarian.
        assert_eq!(
            Personnummer::parse_at("990807+2391", TODAY)
                .unwrap()
                .birth_date()
                .0,
            1899
        );
        // A 2000s birth: 121212-1212 → 2012
        let d: Vec<u8> = "121212121".bytes().map(|b| b - b'0').collect();
        let s = format!("121212-121{}", luhn_check_digit(&d));
        assert_eq!(
            Personnummer::parse_at(&s, TODAY).unwrap().birth_date().0,
            2012
        );
        // Later in the year than today, same yy as this year → last century.
        let d: Vec<u8> = "261231123".bytes().map(|b| b - b'0').collect();
        let s = format!("2612311 23{}", luhn_check_digit(&d)).replace(' ', "");
        assert_eq!(
            Personnummer::parse_at(&s, TODAY).unwrap().birth_date().0,
            1926
        );
    }

    #[test]
    fn dtmf_takes_exactly_twelve_digits() {
        assert!(Personnummer::parse_dtmf("199908072391").is_ok());
        assert_eq!(
            Personnummer::parse_dtmf("9908072391"),
            Err(PnrError::WrongLength(10))
        );
        assert_eq!(
            Personnummer::parse_dtmf("19990807-2391"),
            Err(PnrError::BadCharacter)
        );
        assert_eq!(Personnummer::parse_dtmf(""), Err(PnrError::Empty));
        assert_eq!(
            Personnummer::parse_dtmf("199908072390"),
            Err(PnrError::BadCheckDigit)
        );
    }

    #[test]
    fn debug_and_display_never_show_the_whole_number() {
        let p = Personnummer::parse("199908072391").unwrap();
        assert_eq!(format!("{p}"), "990807-XXXX");
        assert_eq!(format!("{p:?}"), "Personnummer(990807-XXXX)");
        assert!(!format!("{p:?}{p}").contains("2391"));
        assert_eq!(p.display(), "990807-2391");
        assert_eq!(p.masked(), "990807-XXXX");
        assert_eq!(mask_str("199908072391"), "990807-XXXX");
    }

    #[test]
    fn civil_dates_from_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn plus_means_the_person_has_turned_or_turns_100_this_year() {
        let today = (2026, 11, 26);
        let with_check = |nine: &str, sep: char| {
            let d: Vec<u8> = nine.bytes().map(|b| b - b'0').collect();
            format!("{}{sep}{}{}", &nine[..6], &nine[6..], luhn_check_digit(&d))
        };
        // Turns 100 later this year.
        let p = Personnummer::parse_at(&with_check("261231123", '+'), today).unwrap();
        assert_eq!(p.birth_date(), (1926, 12, 31));
        assert_eq!(p.display_at(today), with_check("261231123", '+'));
        // Turned 100 earlier this year.
        let p = Personnummer::parse_at(&with_check("260101123", '+'), today).unwrap();
        assert_eq!(p.birth_date(), (1926, 1, 1));
        // 1927 turns 100 next year: with '+' that is 1827 (127 years old next year).
        let p = Personnummer::parse_at(&with_check("270101123", '+'), today).unwrap();
        assert_eq!(p.birth_date(), (1827, 1, 1));
        // The same digits with '-' are this century's or last, never 1826.
        let p = Personnummer::parse_at(&with_check("260101123", '-'), today).unwrap();
        assert_eq!(p.birth_date(), (2026, 1, 1));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A day from 1900-01-01 to 2199-12-31, as (days since 1970).
        fn day() -> impl Strategy<Value = i64> {
            -25_567i64..83_265
        }

        proptest! {
            #[test]
            fn display_then_parse_gives_the_same_number(
                birth in day(), age_days in 0i64..(199 * 365), nnn in 0u32..1000, coord: bool,
            ) {
                let today = civil_from_days(birth + age_days);
                let (y, m, d) = civil_from_days(birth);
                let nine = format!("{:02}{m:02}{:02}{nnn:03}", y % 100, d + if coord { 60 } else { 0 });
                let digits: Vec<u8> = nine.bytes().map(|b| b - b'0').collect();
                let twelve = format!("{}{nine}{}", y / 100, luhn_check_digit(&digits));
                let p = Personnummer::parse_at(&twelve, today).unwrap();
                prop_assert_eq!(p.birth_date(), (y, m, d));
                let shown = p.display_at(today);
                prop_assert_eq!(Personnummer::parse_at(&shown, today), Ok(p.clone()), "{} on {:?}", shown, today);
            }

            #[test]
            fn arbitrary_text_never_panics(s in "\\PC{0,40}", t in day()) {
                let _ = Personnummer::parse_at(&s, civil_from_days(t));
                let _ = Personnummer::parse_dtmf(&s);
                let _ = mask_str(&s);
            }

            #[test]
            fn digit_strings_never_panic(s in "[0-9+\\- ]{0,16}", t in -800_000i64..800_000) {
                let _ = Personnummer::parse_at(&s, civil_from_days(t));
            }
        }
    }
}
