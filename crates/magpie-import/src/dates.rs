//! Dates as bank files write them. A CSV or QIF file decides its format once, from all of its values,
//! so `03/04/2024` means the same thing on every line of a file.

use chrono::{Datelike, NaiveDate};

/// A date layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DateFormat {
    /// 2024-01-31, 2024/01/31, 2024.01.31
    Ymd,
    /// 20240131
    YmdCompact,
    /// 31.01.2024, 31/01/2024, 31-01-2024, 31/01/24
    Dmy,
    /// 01/31/2024, 1/31/24
    Mdy,
    /// 31 Jan 2024, 31-Jan-2024, 31-JAN-24
    DmonY,
    /// Jan 31, 2024, January 31 2024
    MonDY,
}

impl DateFormat {
    /// Every layout, most common first.
    pub const ALL: [DateFormat; 6] = [
        DateFormat::Ymd,
        DateFormat::Dmy,
        DateFormat::Mdy,
        DateFormat::YmdCompact,
        DateFormat::DmonY,
        DateFormat::MonDY,
    ];

    /// Parse one value in this layout (time of day and a trailing `T…` are ignored).
    pub fn parse(self, raw: &str) -> Option<NaiveDate> {
        let s = strip_time(raw.trim().trim_matches('"'));
        match self {
            DateFormat::YmdCompact => {
                if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                ymd(s[..4].parse().ok()?, s[4..6].parse().ok()?, s[6..8].parse().ok()?)
            }
            DateFormat::Ymd => {
                let [a, b, c] = numeric_parts(s)?;
                if a.len() != 4 {
                    return None;
                }
                ymd(a.parse().ok()?, b.parse().ok()?, c.parse().ok()?)
            }
            DateFormat::Dmy => {
                let [a, b, c] = numeric_parts(s)?;
                if a.len() > 2 {
                    return None;
                }
                ymd(year(c)?, b.parse().ok()?, a.parse().ok()?)
            }
            DateFormat::Mdy => {
                let [a, b, c] = numeric_parts(s)?;
                if a.len() > 2 {
                    return None;
                }
                ymd(year(c)?, a.parse().ok()?, b.parse().ok()?)
            }
            DateFormat::DmonY => {
                let parts: Vec<&str> = s.split([' ', '-', '.', '/']).filter(|p| !p.is_empty()).collect();
                let [d, m, y] = parts.as_slice() else { return None };
                ymd(year(y)?, month(m)?, d.parse().ok()?)
            }
            DateFormat::MonDY => {
                let parts: Vec<&str> = s.split([' ', ',', '-']).filter(|p| !p.is_empty()).collect();
                let [m, d, y] = parts.as_slice() else { return None };
                ymd(year(y)?, month(m)?, d.parse().ok()?)
            }
        }
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Drop a time of day: `2024-01-31T10:00:00`, `2024-01-31 10:00`, `31.01.2024 10:00:00`.
fn strip_time(s: &str) -> &str {
    let s = s.split('T').next().unwrap_or(s);
    match s.split_once(' ') {
        Some((date, rest)) if rest.contains(':') && !date.is_empty() && date.chars().any(|c| c.is_ascii_digit()) => {
            if date.chars().all(|c| c.is_ascii_digit() || "-./".contains(c)) {
                date
            } else {
                s
            }
        }
        _ => s,
    }
}

/// Three all-digit parts separated by one kind of separator among `-`, `/`, `.`.
fn numeric_parts(s: &str) -> Option<[&str; 3]> {
    let sep = s.chars().find(|c| matches!(c, '-' | '/' | '.'))?;
    let mut it = s.split(sep).map(str::trim);
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    for p in [a, b, c] {
        if p.is_empty() || p.len() > 4 || !p.bytes().all(|x| x.is_ascii_digit()) {
            return None;
        }
    }
    Some([a, b, c])
}

/// Two-digit years pivot at 70: 69 is 2069, 70 is 1970 (the usual Quicken/POSIX convention).
fn year(s: &str) -> Option<i32> {
    let s = s.trim();
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match s.len() {
        4 => s.parse().ok(),
        2 => {
            let y: i32 = s.parse().ok()?;
            Some(if y < 70 { 2000 + y } else { 1900 + y })
        }
        _ => None,
    }
}

fn month(s: &str) -> Option<u32> {
    const NAMES: [&[&str]; 12] = [
        &["jan", "january", "januar", "janvier", "enero", "gennaio", "januari", "janeiro"],
        &["feb", "february", "februar", "fevrier", "février", "febrero", "febbraio", "februari", "fevereiro"],
        &["mar", "march", "märz", "maerz", "mars", "marzo", "maart", "março", "mrz"],
        &["apr", "april", "avril", "abril", "aprile"],
        &["may", "mai", "mayo", "maggio", "mei", "maio"],
        &["jun", "june", "juni", "juin", "junio", "giugno", "junho"],
        &["jul", "july", "juli", "juillet", "julio", "luglio", "julho"],
        &["aug", "august", "août", "aout", "agosto", "augustus"],
        &["sep", "sept", "september", "septembre", "septiembre", "settembre", "setembro"],
        &["oct", "october", "oktober", "octobre", "octubre", "ottobre", "okt", "outubro"],
        &["nov", "november", "novembre", "noviembre", "novembro"],
        &["dec", "december", "dezember", "décembre", "decembre", "diciembre", "dicembre", "dez", "dezembro"],
    ];
    let lower = s.trim().trim_end_matches('.').to_lowercase();
    NAMES.iter().position(|names| names.contains(&lower.as_str())).map(|i| i as u32 + 1)
}

/// The layout that reads every sample value, preferring unambiguous evidence. When day/month order
/// cannot be told apart (every day <= 12), `prefer_dmy` decides (files with decimal commas or
/// semicolons are usually European). `None` when no layout reads them all.
pub fn detect<'a>(values: impl Iterator<Item = &'a str> + Clone, prefer_dmy: bool) -> Option<DateFormat> {
    let candidates: Vec<DateFormat> = DateFormat::ALL
        .into_iter()
        .filter(|f| {
            let mut any = false;
            for v in values.clone() {
                if v.trim().is_empty() {
                    continue;
                }
                if f.parse(v).is_none() {
                    return false;
                }
                any = true;
            }
            any
        })
        .collect();
    match candidates.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => {
            let dmy = many.contains(&DateFormat::Dmy);
            let mdy = many.contains(&DateFormat::Mdy);
            if dmy && mdy { Some(if prefer_dmy { DateFormat::Dmy } else { DateFormat::Mdy }) } else { Some(many[0]) }
        }
    }
}

/// Whether a date is plausible for a bank statement (guards against reading an amount as a date).
pub fn plausible(d: NaiveDate) -> bool {
    (1950..=2150).contains(&d.year())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn each_layout_reads_its_forms() {
        assert_eq!(DateFormat::Ymd.parse("2025.12.04"), Some(d("2025-12-04")));
        assert_eq!(DateFormat::Ymd.parse("2024-01-31T10:00:00"), Some(d("2024-01-31")));
        assert_eq!(DateFormat::YmdCompact.parse("20200213"), Some(d("2020-02-13")));
        assert_eq!(DateFormat::Dmy.parse("28.12.2018"), Some(d("2018-12-28")));
        assert_eq!(DateFormat::Dmy.parse("28.12.2018 10:31"), Some(d("2018-12-28")));
        assert_eq!(DateFormat::Mdy.parse("6/4/2016"), Some(d("2016-06-04")));
        assert_eq!(DateFormat::Mdy.parse("6/4/16"), Some(d("2016-06-04")));
        assert_eq!(DateFormat::DmonY.parse("26 Jan 2026"), Some(d("2026-01-26")));
        assert_eq!(DateFormat::DmonY.parse("26-JAN-26"), Some(d("2026-01-26")));
        assert_eq!(DateFormat::MonDY.parse("Jan 26, 2026"), Some(d("2026-01-26")));
        assert_eq!(DateFormat::Dmy.parse("30.02.2024"), None);
    }

    #[test]
    fn the_layout_is_decided_once_per_file() {
        assert_eq!(detect(["03/04/2024", "13/04/2024"].into_iter(), false), Some(DateFormat::Dmy));
        assert_eq!(detect(["03/04/2024", "04/13/2024"].into_iter(), true), Some(DateFormat::Mdy));
        assert_eq!(detect(["03/04/2024", "05/06/2024"].into_iter(), true), Some(DateFormat::Dmy));
        assert_eq!(detect(["03/04/2024", "05/06/2024"].into_iter(), false), Some(DateFormat::Mdy));
        assert_eq!(detect(["2024-01-02", ""].into_iter(), false), Some(DateFormat::Ymd));
        assert_eq!(detect(["yesterday"].into_iter(), false), None);
    }
}
