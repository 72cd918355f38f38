//! Amounts as banks write them: `1,234.56`, `1.234,56`, `-5,50`, `(12.34)`, `$(900.23)`, `+1,23`,
//! `12.34-`, `1 234,56`, `1'234.56`, `20,` (MT940), with or without a currency. Always exact decimals.

use std::str::FromStr;

use rust_decimal::Decimal;

/// Which character separates the decimals, when a file has decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecimalMark {
    /// Decide per value: the last of `.`/`,` when both occur; a lone `,` followed by 1 or 2 digits is a
    /// decimal comma; otherwise `.`.
    #[default]
    Auto,
    /// `1,234.56`.
    Point,
    /// `1.234,56`.
    Comma,
}

/// Parse an amount. `None` for an empty or non-numeric value.
pub fn parse_amount(raw: &str, mark: DecimalMark) -> Option<Decimal> {
    let mut s = raw.trim();
    if s.is_empty() {
        return None;
    }
    // Fast path for the plain form (`-1234.56`), which is most rows of most files.
    if mark != DecimalMark::Comma && is_plain(s) {
        return Decimal::from_str(s).ok();
    }
    let mut negative = false;
    // Parentheses, possibly around or after a currency sign: (12.34), $(12.34), ($12.34).
    let unwrapped: String;
    if let (Some(open), Some(close)) = (s.find('('), s.rfind(')'))
        && open < close
    {
        negative = true;
        unwrapped = format!("{}{}{}", &s[..open], &s[open + 1..close], &s[close + 1..]);
        s = unwrapped.as_str();
    }
    // Keep digits, separators and signs; drop currency symbols and codes, spaces and apostrophes.
    let mut owned = String::with_capacity(s.len());
    let mut seen_digit = false;
    for (i, c) in s.char_indices() {
        match c {
            '0'..='9' => {
                seen_digit = true;
                owned.push(c);
            }
            '.' | ',' => owned.push(c),
            '-' | '\u{2212}' => {
                // A leading or trailing minus (12.34-); a minus between digits is not a number.
                if seen_digit && s[i + c.len_utf8()..].chars().any(|d| d.is_ascii_digit()) {
                    return None;
                }
                negative = !negative;
            }
            '+' => {}
            ' ' | '\u{a0}' | '\u{202f}' | '\'' | '’' | '\t' => {}
            c if c.is_alphabetic() || matches!(c, '$' | '€' | '£' | '¥' | '₹' | '₽' | '₩' | '¢') => {
                if seen_digit && s[i..].chars().any(|d| d.is_ascii_digit()) {
                    // Letters between digits: not an amount.
                    return None;
                }
            }
            _ => return None,
        }
    }
    if !seen_digit {
        return None;
    }
    let normalized = normalize_separators(&owned, mark)?;
    let mut d = Decimal::from_str(&normalized).ok()?;
    if negative {
        d.set_sign_negative(!d.is_zero());
    }
    Some(d)
}

/// `-?digits(.digits)?`
fn is_plain(s: &str) -> bool {
    let b = s.as_bytes();
    let body = if b.first() == Some(&b'-') { &b[1..] } else { b };
    let mut points = 0;
    !body.is_empty()
        && body[0].is_ascii_digit()
        && body.iter().all(|c| {
            if *c == b'.' {
                points += 1;
                true
            } else {
                c.is_ascii_digit()
            }
        })
        && points <= 1
        && body.last().is_some_and(u8::is_ascii_digit)
        && body.len() <= 20
}

/// Turn `1.234,56` or `1,234.56` into `1234.56`.
fn normalize_separators(s: &str, mark: DecimalMark) -> Option<String> {
    let last_point = s.rfind('.');
    let last_comma = s.rfind(',');
    let decimal = match mark {
        DecimalMark::Point => Some('.'),
        DecimalMark::Comma => Some(','),
        DecimalMark::Auto => match (last_point, last_comma) {
            (Some(p), Some(c)) => Some(if p > c { '.' } else { ',' }),
            (None, Some(c)) => {
                let after = s.len() - c - 1;
                let commas = s.matches(',').count();
                // "1,234" and "1,234,567" are thousands; "5,50", "20," and "-24,9900" are decimals.
                if commas > 1 || (after == 3 && c > 0) { None } else { Some(',') }
            }
            (Some(p), None) => {
                let after = s.len() - p - 1;
                let points = s.matches('.').count();
                // "1.234.567" is thousands (European); "1.234" stays a decimal point (ambiguous, but
                // a point is far more often decimal in bank exports).
                if points > 1 && after == 3 { None } else { Some('.') }
            }
            (None, None) => None,
        },
    };
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '0'..='9' => out.push(c),
            c if Some(c) == decimal => out.push('.'),
            '.' | ',' => {}
            _ => return None,
        }
    }
    if out.matches('.').count() > 1 {
        return None;
    }
    if out.ends_with('.') {
        out.pop();
    }
    if out.starts_with('.') {
        out.insert(0, '0');
    }
    if out.is_empty() { None } else { Some(out) }
}

/// Decide a file's decimal mark from sample values: a comma followed by exactly one or two digits at the
/// end of any value means decimal comma; a point likewise means decimal point.
pub fn detect_mark<'a>(values: impl Iterator<Item = &'a str>) -> DecimalMark {
    let (mut comma, mut point) = (0, 0);
    for v in values {
        let v = v.trim().trim_end_matches(|c: char| !c.is_ascii_digit());
        let digits_after = |sep: char| v.rfind(sep).map(|i| v.len() - i - 1);
        if let Some(n) = digits_after(',')
            && (1..=2).contains(&n)
            && digits_after('.').is_none_or(|p| p > n)
        {
            comma += 1;
        }
        if let Some(n) = digits_after('.')
            && (1..=2).contains(&n)
            && digits_after(',').is_none_or(|c| c > n)
        {
            point += 1;
        }
    }
    if comma > point {
        DecimalMark::Comma
    } else if point > 0 {
        DecimalMark::Point
    } else {
        DecimalMark::Auto
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        parse_amount(s, DecimalMark::Auto).map(|d| d.to_string())
    }

    #[test]
    fn the_forms_banks_use() {
        assert_eq!(p("1,234.56").as_deref(), Some("1234.56"));
        assert_eq!(p("-1.001,00").as_deref(), Some("-1001.00"));
        assert_eq!(p("+1,23").as_deref(), Some("1.23"));
        assert_eq!(p("-5,50").as_deref(), Some("-5.50"));
        assert_eq!(p("(123.45)").as_deref(), Some("-123.45"));
        assert_eq!(p("$(12.34)").as_deref(), Some("-12.34"));
        assert_eq!(p("($900.23)").as_deref(), Some("-900.23"));
        assert_eq!(p("12.34-").as_deref(), Some("-12.34"));
        assert_eq!(p("1 234,56 €").as_deref(), Some("1234.56"));
        assert_eq!(p("1'234.50").as_deref(), Some("1234.50"));
        assert_eq!(p("20,").as_deref(), Some("20"));
        assert_eq!(p("-24,9900").as_deref(), Some("-24.9900"));
        assert_eq!(p("EUR -3.50").as_deref(), Some("-3.50"));
        assert_eq!(p("000000000000149.87").as_deref(), Some("149.87"));
        assert_eq!(p("\"1,120.00\"".trim_matches('"')).as_deref(), Some("1120.00"));
        assert_eq!(p("1,234").as_deref(), Some("1234"));
        assert_eq!(p("1.234.567").as_deref(), Some("1234567"));
    }

    #[test]
    fn non_amounts_are_none() {
        for s in ["", "abc", "-", "12-34", "1.2.3,4,5", "N/A", "12a34"] {
            assert_eq!(p(s), None, "{s}");
        }
    }

    #[test]
    fn a_forced_mark_wins() {
        assert_eq!(parse_amount("1,234", DecimalMark::Comma).unwrap().to_string(), "1.234");
        assert_eq!(parse_amount("1.234", DecimalMark::Comma).unwrap().to_string(), "1234");
    }

    #[test]
    fn the_mark_is_detected_per_file() {
        assert_eq!(detect_mark(["1.234,56", "-5,50", "3"].into_iter()), DecimalMark::Comma);
        assert_eq!(detect_mark(["1,234.56", "5.50"].into_iter()), DecimalMark::Point);
    }
}
