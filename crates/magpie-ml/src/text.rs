//! Bank-string normalization: what varies between two charges of the same merchant (case, store
//! numbers, reference codes, card masks, dates and times inside the text, processor prefixes) is made
//! to look the same, while what tells merchants and kinds of payment apart is kept.

/// Processor and wallet prefixes that come before the merchant's name (`SQ *BLUE BOTTLE`,
/// `TST* JOES DINER`, `PAYPAL *SPOTIFY`). They are kept as one token (a Square charge is usually a small
/// shop or café, a Toast one a restaurant) but marked so they do not read as part of the name.
const PROCESSORS: &[&str] = &[
    "sq", "tst", "paypal", "pp", "sp", "dd", "ic", "apl", "apple", "google", "goog", "amzn", "amazon", "uber", "lyft",
    "doordash", "grubhub", "venmo", "zelle", "stripe", "shopify", "etsy", "ebay", "klarna", "afterpay", "pos", "ach",
    "sumup", "zettle", "izettle", "payu", "adyen", "wise", "revolut", "fs", "bt", "dnh", "wpy",
];

/// Digits kept of a run: a store number or a date keeps its shape, not its value, and a 16-digit
/// reference becomes the same short token as any other long reference.
const DIGIT_RUN: usize = 4;

/// Lower-case, digits to `0` (runs of more than four digits cut to four), punctuation that only decorates
/// to spaces, a known processor prefix before `*` marked as one token (`sq*`), other `*` dropped,
/// whitespace collapsed.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 4);
    normalize_into(raw, &mut out);
    out
}

/// [`normalize`] into a reused buffer.
pub fn normalize_into(raw: &str, out: &mut String) {
    out.clear();
    let mut digits = 0;
    let mut space = true;
    // Byte offset in `out` of the first `*`, if any.
    let mut first_star: Option<usize> = None;
    for c in raw.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits <= DIGIT_RUN {
                out.push('0');
            }
            space = false;
            continue;
        }
        digits = 0;
        if c.is_alphanumeric() || matches!(c, '&' | '\'' | '/' | '-' | '.' | '@' | '#') {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
            space = false;
        } else if c == '*' {
            // `SQ *NAME`, `AMZN Mktp US*2K3LM0`: a separator between a processor and the rest.
            if first_star.is_none() {
                while out.ends_with(' ') {
                    out.pop();
                }
                first_star = Some(out.len());
            }
            if !space {
                out.push(' ');
                space = true;
            }
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    if let Some(star) = first_star.filter(|s| *s > 0 && *s <= out.len()) {
        let head = &out[..star];
        let is_processor = head.split(' ').next().is_some_and(|w| PROCESSORS.contains(&w.trim_matches('.')));
        // At most three words before the star: `amzn mktp us*`, not a whole sentence.
        if is_processor && head.split(' ').count() <= 3 {
            let mark = format!("{}*", head.replace(' ', "_"));
            let rest = out[star..].trim_start().to_owned();
            out.clear();
            out.push_str(&mark);
            if !rest.is_empty() {
                out.push(' ');
                out.push_str(&rest);
            }
        }
    }
}

/// Lower-case with whitespace collapsed and nothing else changed: the view of the text that keeps
/// digits and punctuation, for character n-grams.
pub fn lowercase_into(raw: &str, out: &mut String) {
    out.clear();
    let mut space = true;
    for c in raw.chars() {
        if c.is_whitespace() {
            if !space {
                out.push(' ');
                space = true;
            }
        } else {
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
            space = false;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
}

/// Word tokens of a normalized string: runs of letters, digits, `&` and `'` (`h&m`, `macy's`), plus
/// processor marks (`sq*`).
pub fn words(normalized: &str) -> impl Iterator<Item = &str> {
    normalized
        .split(|c: char| !(c.is_alphanumeric() || matches!(c, '&' | '\'' | '*' | '_')))
        .filter(|w| !w.is_empty() && *w != "&" && *w != "'")
}

/// The merchant key of a description: its normalized words without digits-only tokens, processor
/// marks or reference-like tokens, so that `NETFLIX.COM 4029357733 CA` and `NETFLIX.COM 1234 CA` have
/// the same key. Corrections are remembered under it.
pub fn merchant_key(raw: &str) -> String {
    let normalized = normalize(raw);
    let mut key = String::with_capacity(normalized.len());
    for w in words(&normalized) {
        // Tokens with a digit are store numbers, dates and references; single letters carry little.
        if w.contains('0') || w.chars().count() < 2 {
            continue;
        }
        let w = w.strip_suffix('*').unwrap_or(w);
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(w);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processors_store_numbers_masks_and_dates_normalize_alike() {
        assert_eq!(normalize("SQ *BLUE BOTTLE COFFEE"), "sq* blue bottle coffee");
        assert_eq!(normalize("TST* Joe's Diner 0042"), "tst* joe's diner 0000");
        assert_eq!(normalize("PAYPAL *SPOTIFY 4029357733"), "paypal* spotify 0000");
        assert_eq!(normalize("AMZN Mktp US*2K3LM0AB2"), "amzn_mktp_us* 0k0lm0ab0");
        assert_eq!(normalize("WHOLEFDS MKT #10234 12/31"), "wholefds mkt #0000 00/00");
        assert_eq!(normalize("CARD XXXX1234 SHELL OIL 57444"), "card xxxx0000 shell oil 0000");
        assert_eq!(normalize("  Café  Zürich, 10:32 "), "café zürich 00 00");
        // A star that does not follow a processor is only a separator.
        assert_eq!(normalize("NETFLIX.COM*MEMBERSHIP"), "netflix.com membership");
        assert_eq!(normalize("***"), "");
        assert_eq!(normalize("*"), "");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("SQ *"), "sq*");
    }

    #[test]
    fn words_keep_names_with_ampersands_and_apostrophes() {
        let n = normalize("H&M Store / MACY'S #12");
        assert_eq!(n, "h&m store / macy's #00");
        assert_eq!(words(&n).collect::<Vec<_>>(), ["h&m", "store", "macy's", "00"]);
    }

    #[test]
    fn merchant_keys_ignore_references_and_processors() {
        assert_eq!(merchant_key("NETFLIX.COM 4029357733 CA"), merchant_key("Netflix.com 1234 ca"));
        assert_eq!(merchant_key("SQ *BLUE BOTTLE 0042"), "sq blue bottle");
        assert_eq!(merchant_key("12345"), "");
        assert_ne!(merchant_key("SHELL OIL"), merchant_key("SHELL GAS"));
    }

    #[test]
    fn lowercase_keeps_digits_and_punctuation() {
        let mut s = String::new();
        lowercase_into("  TRF/Transfer  FRM 305 ", &mut s);
        assert_eq!(s, "trf/transfer frm 305");
    }
}
