//! How pages write money, dates and URLs. Amounts are formatted from their exact cents, never through
//! floating point.

use magpie_domain::Money;

/// `1234567` cents -> `12,345.67`; negative amounts get a minus sign.
pub fn money(m: Money) -> String {
    cents(m.cents())
}

/// Cents with thousands separators and two decimals.
pub fn cents(c: i64) -> String {
    let neg = c < 0;
    let abs = c.unsigned_abs();
    let (units, frac) = (abs / 100, abs % 100);
    let digits = units.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 4);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}{grouped}.{frac:02}", if neg { "−" } else { "" })
}

/// Whole units with separators (chart axes): `123456` cents -> `1,235`.
pub fn whole(c: i64) -> String {
    let s = cents((c + if c >= 0 { 50 } else { -50 }) / 100 * 100);
    s.trim_end_matches(".00").to_owned()
}

/// Percent-encode a query value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `2026-03` -> `Mar 2026`.
pub fn month_label(month: &str) -> String {
    const NAMES: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = month.split('-');
    match (parts.next(), parts.next().and_then(|m| m.parse::<usize>().ok())) {
        (Some(y), Some(m)) if (1..=12).contains(&m) => format!("{} {y}", NAMES[m - 1]),
        _ => month.to_owned(),
    }
}

/// A percentage of `part` in `whole` (0 when `whole` is 0), for meters.
pub fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 { 0 } else { (part.saturating_mul(100) / whole).max(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_grouped_exactly() {
        assert_eq!(cents(0), "0.00");
        assert_eq!(cents(5), "0.05");
        assert_eq!(cents(123_456_789), "1,234,567.89");
        assert_eq!(cents(-100_000), "−1,000.00");
        assert_eq!(cents(99_999), "999.99");
        assert_eq!(whole(123_456), "1,235");
        assert_eq!(month_label("2026-03"), "Mar 2026");
        assert_eq!(urlencode("/a b?c=d"), "/a%20b%3Fc%3Dd");
    }
}
