//! Charts as inline SVG written here: no script, no external file, styled by the page's stylesheet
//! through classes (the CSP forbids inline styles). Each chart is an `img` with a `<title>` and a
//! `<desc>` that says in words what it shows, and every figure is also a `<text>` label, so a screen
//! reader gets the numbers, not just a shape.

use std::fmt::Write;

use super::format::{cents, month_label, whole};

/// XML-escape text for SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn open(out: &mut String, id: &str, width: u32, height: u32, title: &str, desc: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{id}-t {id}-d" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{}</title><desc id="{id}-d">{}</desc>"#,
        esc(title),
        esc(desc)
    );
}

/// Horizontal bars, largest first as given: `(label, cents)`.
pub fn bars(id: &str, title: &str, items: &[(String, i64)]) -> String {
    let row = 28;
    let (width, label_w, value_w) = (640u32, 170i64, 110i64);
    let height = (items.len().max(1) as u32) * row + 8;
    let desc = items.iter().map(|(l, c)| format!("{l}: {}", cents(*c))).collect::<Vec<_>>().join("; ");
    let mut out = String::new();
    open(&mut out, id, width, height, title, &desc);
    let max = items.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1);
    let span = i64::from(width) - label_w - value_w;
    for (i, (label, c)) in items.iter().enumerate() {
        let y = i as i64 * i64::from(row) + 4;
        let w = (c.max(&0) * span / max).max(2);
        let short: String = if label.chars().count() > 22 {
            label.chars().take(21).chain(std::iter::once('…')).collect()
        } else {
            label.clone()
        };
        let _ = write!(
            out,
            r#"<text class="label" x="{}" y="{}" text-anchor="end">{}</text><rect class="bar bar{}" x="{label_w}" y="{y}" width="{w}" height="{}" rx="3"/><text class="value" x="{}" y="{}">{}</text>"#,
            label_w - 8,
            y + 17,
            esc(&short),
            i % 6,
            row - 8,
            label_w + w + 6,
            y + 17,
            cents(*c)
        );
    }
    out.push_str("</svg>");
    out
}

/// One month of a forecast.
#[derive(Debug, Clone)]
pub struct ForecastPoint {
    /// `YYYY-MM`.
    pub month: String,
    /// Expected, cents.
    pub mean: i64,
    /// 80% interval, cents.
    pub low80: i64,
    /// 80% interval, cents.
    pub high80: i64,
    /// 95% interval, cents.
    pub low95: i64,
    /// 95% interval, cents.
    pub high95: i64,
}

/// Monthly history (solid line) then the forecast (dashed) inside its 80% and 95% intervals (bands).
pub fn forecast(id: &str, title: &str, history: &[(String, i64)], ahead: &[ForecastPoint]) -> String {
    let (width, height) = (640i64, 260i64);
    let (left, right, top, bottom) = (64i64, 16i64, 12i64, 36i64);
    let n = history.len() + ahead.len();
    let mut desc = String::new();
    if let Some((m, c)) = history.last() {
        let _ = write!(desc, "{}: {} spent. ", month_label(m), cents(*c));
    }
    for p in ahead {
        let _ = write!(
            desc,
            "{}: expected {} (80% between {} and {}; 95% between {} and {}). ",
            month_label(&p.month),
            cents(p.mean),
            cents(p.low80),
            cents(p.high80),
            cents(p.low95),
            cents(p.high95)
        );
    }
    let mut out = String::new();
    open(&mut out, id, width as u32, height as u32, title, desc.trim_end());
    if n == 0 {
        out.push_str("</svg>");
        return out;
    }
    let max = history.iter().map(|h| h.1).chain(ahead.iter().map(|p| p.high95)).max().unwrap_or(0).max(100);
    let max = nice_ceiling(max);
    let x = |i: usize| left + (width - left - right) * i as i64 / (n.max(2) as i64 - 1);
    let y = |c: i64| top + (height - top - bottom) * (max - c.clamp(0, max)) / max;
    for k in 0..=4 {
        let v = max * k / 4;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{left}" x2="{}" y1="{yy}" y2="{yy}"/><text class="axis" x="{}" y="{}" text-anchor="end">{}</text>"#,
            width - right,
            left - 6,
            y(v) + 4,
            whole(v),
            yy = y(v)
        );
    }
    let step = (n / 8).max(1);
    let months: Vec<&str> =
        history.iter().map(|h| h.0.as_str()).chain(ahead.iter().map(|p| p.month.as_str())).collect();
    for (i, m) in months.iter().enumerate() {
        if i % step == 0 || i == n - 1 {
            let _ = write!(
                out,
                r#"<text class="axis" x="{}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                height - bottom + 18,
                esc(&month_label(m))
            );
        }
    }
    if !ahead.is_empty() {
        let start = history.len().saturating_sub(1);
        let anchor = history.last().map(|h| h.1);
        let band = |lo: &dyn Fn(&ForecastPoint) -> i64, hi: &dyn Fn(&ForecastPoint) -> i64| {
            let mut pts: Vec<String> = Vec::new();
            if let Some(a) = anchor {
                pts.push(format!("{},{}", x(start), y(a)));
            }
            for (j, p) in ahead.iter().enumerate() {
                pts.push(format!("{},{}", x(history.len() + j), y(hi(p))));
            }
            for (j, p) in ahead.iter().enumerate().rev() {
                pts.push(format!("{},{}", x(history.len() + j), y(lo(p))));
            }
            pts.join(" ")
        };
        let _ = write!(out, r#"<polygon class="band95" points="{}"/>"#, band(&|p| p.low95, &|p| p.high95));
        let _ = write!(out, r#"<polygon class="band80" points="{}"/>"#, band(&|p| p.low80, &|p| p.high80));
        let mut line: Vec<String> = anchor.map(|a| vec![format!("{},{}", x(start), y(a))]).unwrap_or_default();
        line.extend(ahead.iter().enumerate().map(|(j, p)| format!("{},{}", x(history.len() + j), y(p.mean))));
        let _ = write!(out, r#"<polyline class="line ahead" points="{}"/>"#, line.join(" "));
    }
    if !history.is_empty() {
        let pts: Vec<String> = history.iter().enumerate().map(|(i, h)| format!("{},{}", x(i), y(h.1))).collect();
        let _ = write!(out, r#"<polyline class="line past" points="{}"/>"#, pts.join(" "));
    }
    out.push_str("</svg>");
    out
}

/// A round number at least `v` (1, 2 or 5 times a power of ten), for the axis.
fn nice_ceiling(v: i64) -> i64 {
    let mut p: i64 = 1;
    while p.saturating_mul(10) <= v {
        p = p.saturating_mul(10);
    }
    for m in [1, 2, 5, 10] {
        if p.saturating_mul(m) >= v {
            return p.saturating_mul(m);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_labelled_and_escaped() {
        let svg = bars("s", "Spending <this month>", &[("Food & drink".into(), 12_345), ("Rent".into(), 100_000)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("<title id=\"s-t\">Spending &lt;this month&gt;</title>"));
        assert!(svg.contains("Food &amp; drink: 123.45; Rent: 1,000.00"));
        assert!(svg.contains(">1,000.00</text>"));
        assert!(!svg.contains("style="));
    }

    #[test]
    fn forecast_describes_the_interval() {
        let hist = vec![("2026-01".to_owned(), 100_000), ("2026-02".to_owned(), 120_000)];
        let ahead = vec![ForecastPoint {
            month: "2026-03".into(),
            mean: 110_000,
            low80: 90_000,
            high80: 130_000,
            low95: 80_000,
            high95: 140_000,
        }];
        let svg = forecast("f", "Spending forecast", &hist, &ahead);
        assert!(svg.contains(
            "Mar 2026: expected 1,100.00 (80% between 900.00 and 1,300.00; 95% between 800.00 and 1,400.00)"
        ));
        assert!(svg.contains("class=\"band95\"") && svg.contains("class=\"line past\""));
        assert_eq!(nice_ceiling(140_000), 200_000);
        assert_eq!(nice_ceiling(100), 100);
    }
}
