//! Realistic personal-finance histories, generated deterministically from a seed: a salary with yearly
//! raises, rent, utilities with seasons, subscriptions (one with a price increase), insurance, and
//! discretionary spending with weekly and yearly rhythms (weekend dining, December shopping, summer
//! travel), written the way banks write descriptions (store numbers, processor prefixes, reference codes).
//!
//! Used by `magpie seed-demo`, by benchmarks that need 100,000 transactions, and by tests of
//! categorization, recurring-payment detection and forecasting, which get the ground truth alongside
//! (`series` names the recurring series a transaction belongs to).

use chrono::{Datelike, Days, NaiveDate, Weekday};
use magpie_domain::{Money, TransactionType};

/// A generated transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTransaction {
    /// Booking date.
    pub date: NaiveDate,
    /// Amount, positive.
    pub amount: Money,
    /// Direction.
    pub kind: TransactionType,
    /// Bank-style description.
    pub description: String,
    /// The category a person would give it (a default-taxonomy name).
    pub category: &'static str,
    /// For recurring payments and income: the series' name (ground truth for detection tests).
    pub series: Option<&'static str>,
}

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct DemoSpec {
    /// Approximate number of transactions (fixed bills and income are always included; discretionary
    /// spending fills up to this count).
    pub transactions: usize,
    /// Last day of the history.
    pub end: NaiveDate,
    /// Length of the history in months.
    pub months: u32,
    /// Seed: the same seed gives the same history.
    pub seed: u64,
}

/// SplitMix64: tiny, fast, deterministic across platforms, good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// One element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.next_u64() as usize % items.len()]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
}

/// Cents from a float amount, rounded (generation only: the result is an exact `Money`).
fn money(amount: f64) -> Money {
    Money::from_cents((amount * 100.0).round().max(1.0) as i64)
}

/// A discretionary spending pattern: merchants of one category and their amount range.
struct Pattern {
    category: &'static str,
    merchants: &'static [&'static str],
    min: f64,
    max: f64,
    /// Relative frequency.
    weight: f64,
}

const PATTERNS: &[Pattern] = &[
    Pattern {
        category: "Groceries",
        merchants: &[
            "WHOLE FOODS MKT #{n}",
            "TRADER JOE'S #{n}",
            "SAFEWAY {n}",
            "KROGER #{n}",
            "ALDI {n}",
            "COSTCO WHSE #{n}",
        ],
        min: 12.0,
        max: 185.0,
        weight: 14.0,
    },
    Pattern {
        category: "Dining",
        merchants: &[
            "CHIPOTLE {n}",
            "SQ *BLUE PLATE DINER",
            "TST* SUSHI ZEN",
            "OLIVE GARDEN {n}",
            "DOORDASH*THAI BASIL",
            "UBER *EATS PENDING",
            "SWEETGREEN {n}",
            "SHAKE SHACK #{n}",
        ],
        min: 9.0,
        max: 95.0,
        weight: 11.0,
    },
    Pattern {
        category: "Coffee Shops",
        merchants: &["STARBUCKS STORE {n}", "SQ *BLUE BOTTLE COFFEE", "PEET'S COFFEE #{n}", "DUNKIN #{n}"],
        min: 3.2,
        max: 9.5,
        weight: 9.0,
    },
    Pattern {
        category: "Transportation",
        merchants: &["UBER *TRIP {ref}", "LYFT *RIDE {ref}", "MTA*NYCT PAYGO", "CLIPPER SERVICE", "PARKWHIZ {ref}"],
        min: 2.9,
        max: 48.0,
        weight: 7.0,
    },
    Pattern {
        category: "Fuel",
        merchants: &["SHELL OIL {n}", "CHEVRON {n}", "EXXONMOBIL {n}", "BP#{n}"],
        min: 28.0,
        max: 74.0,
        weight: 3.0,
    },
    Pattern {
        category: "Shopping",
        merchants: &[
            "AMZN Mktp US*{ref}",
            "TARGET {n}",
            "WALMART.COM {ref}",
            "BEST BUY {n}",
            "ETSY.COM*{ref}",
            "PAYPAL *EBAY {ref}",
        ],
        min: 8.0,
        max: 240.0,
        weight: 8.0,
    },
    Pattern {
        category: "Clothing",
        merchants: &["UNIQLO USA {n}", "H&M {n}", "NORDSTROM #{n}", "ZARA USA {n}"],
        min: 15.0,
        max: 160.0,
        weight: 2.0,
    },
    Pattern {
        category: "Entertainment",
        merchants: &["AMC {n} ONLINE", "STEAMGAMES.COM {ref}", "TICKETMASTER {ref}", "REGAL CINEMAS {n}"],
        min: 9.0,
        max: 120.0,
        weight: 2.5,
    },
    Pattern {
        category: "Healthcare",
        merchants: &["CVS/PHARMACY #{n}", "WALGREENS #{n}", "KAISER PERMANENTE {ref}", "QUEST DIAGNOSTICS"],
        min: 6.0,
        max: 180.0,
        weight: 1.8,
    },
    Pattern {
        category: "Personal Care",
        merchants: &["GREAT CLIPS #{n}", "SEPHORA {n}", "ULTA BEAUTY {n}"],
        min: 12.0,
        max: 90.0,
        weight: 1.2,
    },
    Pattern {
        category: "Home",
        merchants: &["THE HOME DEPOT #{n}", "LOWE'S #{n}", "IKEA {n}", "BED BATH {n}"],
        min: 10.0,
        max: 260.0,
        weight: 1.5,
    },
    Pattern {
        category: "Pets",
        merchants: &["PETCO {n}", "CHEWY.COM {ref}", "BANFIELD PET HOSP"],
        min: 14.0,
        max: 120.0,
        weight: 1.0,
    },
    Pattern {
        category: "Travel",
        merchants: &["DELTA AIR {ref}", "UNITED {ref}", "MARRIOTT {n}", "AIRBNB * {ref}", "HERTZ RENT-A-CAR"],
        min: 60.0,
        max: 650.0,
        weight: 0.8,
    },
    Pattern {
        category: "Gifts & Donations",
        merchants: &["GOFUNDME {ref}", "RED CROSS DONATION", "1-800-FLOWERS {ref}"],
        min: 15.0,
        max: 150.0,
        weight: 0.6,
    },
    Pattern {
        category: "Education",
        merchants: &["COURSERA {ref}", "UDEMY {ref}", "BARNES & NOBLE #{n}"],
        min: 12.0,
        max: 90.0,
        weight: 0.5,
    },
    Pattern {
        category: "Fees & Charges",
        merchants: &["MONTHLY SERVICE FEE", "FOREIGN TRANSACTION FEE", "OVERDRAFT FEE"],
        min: 3.0,
        max: 35.0,
        weight: 0.3,
    },
    Pattern {
        category: "Cash Withdrawal",
        merchants: &["ATM WITHDRAWAL {n} MAIN ST", "CASH WITHDRAWAL {ref}"],
        min: 20.0,
        max: 200.0,
        weight: 0.8,
    },
];

/// Fill `{n}` with a store number and `{ref}` with a reference code.
fn render(template: &str, rng: &mut Rng) -> String {
    let mut out = template.to_owned();
    if out.contains("{n}") {
        out = out.replace("{n}", &format!("{:04}", rng.range(1, 9999)));
    }
    if out.contains("{ref}") {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        let code: String = (0..8).map(|_| ALPHABET[rng.range(0, ALPHABET.len() as u64 - 1) as usize] as char).collect();
        out = out.replace("{ref}", &code);
    }
    out
}

/// Seasonal multiplier of a category in a month (1 = January).
fn season(category: &str, month: u32) -> f64 {
    match (category, month) {
        ("Shopping" | "Gifts & Donations", 11) => 1.6,
        ("Shopping" | "Gifts & Donations", 12) => 2.4,
        ("Travel", 6..=8) => 2.8,
        ("Travel", 12) => 1.5,
        ("Utilities", 1 | 2 | 12) => 1.5,
        ("Utilities", 7 | 8) => 1.3,
        ("Dining", 12) => 1.3,
        _ => 1.0,
    }
}

/// The last weekday (Mon-Fri) of a month: when the salary arrives.
fn last_business_day(year: i32, month: u32) -> NaiveDate {
    let first_next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) }
            .expect("valid month");
    let mut d = first_next - Days::new(1);
    while matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
        d = d - Days::new(1);
    }
    d
}

fn month_day(year: i32, month: u32, day: u32) -> NaiveDate {
    let mut d = day;
    loop {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, d) {
            return date;
        }
        d -= 1;
    }
}

/// Generate a history. Sorted by date; the same spec always gives the same result.
pub fn generate(spec: DemoSpec) -> Vec<DemoTransaction> {
    let mut rng = Rng::new(spec.seed);
    let start = spec.end - chrono::Months::new(spec.months) + Days::new(1);
    let mut out = Vec::with_capacity(spec.transactions + 64);
    let push = |out: &mut Vec<DemoTransaction>,
                date: NaiveDate,
                amount: Money,
                kind,
                description: String,
                category,
                series| {
        if date >= start && date <= spec.end {
            out.push(DemoTransaction { date, amount, kind, description, category, series });
        }
    };

    // Fixed income and bills, month by month.
    let mut ym = (start.year(), start.month());
    let mut month_index = 0u32;
    loop {
        let (y, m) = ym;
        if NaiveDate::from_ymd_opt(y, m, 1).expect("month") > spec.end {
            break;
        }
        let years_in = f64::from(month_index / 12);
        use TransactionType::{Expense, Income};
        let salary = 4250.0 * 1.03f64.powf(years_in);
        push(
            &mut out,
            last_business_day(y, m),
            money(salary),
            Income,
            "ACME CORP PAYROLL PPD ID: 9876543210".into(),
            "Salary",
            Some("salary"),
        );
        push(
            &mut out,
            month_day(y, m, 1),
            money(1650.0 * 1.04f64.powf(years_in)),
            Expense,
            "OAKWOOD PROPERTY MGMT RENT".into(),
            "Rent",
            Some("rent"),
        );
        let power = 78.0 * season("Utilities", m) * (0.9 + 0.2 * rng.f64());
        push(
            &mut out,
            month_day(y, m, 14 + rng.range(0, 2) as u32),
            money(power),
            Expense,
            "CITY POWER & LIGHT AUTOPAY".into(),
            "Utilities",
            Some("power"),
        );
        push(
            &mut out,
            month_day(y, m, 9),
            money(79.99),
            Expense,
            "COMCAST XFINITY INTERNET".into(),
            "Internet & Phone",
            Some("internet"),
        );
        push(
            &mut out,
            month_day(y, m, 21),
            money(65.00),
            Expense,
            "T-MOBILE*AUTO PAY".into(),
            "Internet & Phone",
            Some("phone"),
        );
        push(
            &mut out,
            month_day(y, m, 3),
            money(112.40),
            Expense,
            "GEICO *AUTO INSURANCE".into(),
            "Insurance",
            Some("car insurance"),
        );
        // Netflix raises its price two thirds of the way through the history.
        let netflix = if month_index * 3 >= spec.months * 2 { 17.99 } else { 15.49 };
        push(
            &mut out,
            month_day(y, m, 17),
            money(netflix),
            Expense,
            "NETFLIX.COM".into(),
            "Subscriptions",
            Some("netflix"),
        );
        push(
            &mut out,
            month_day(y, m, 5),
            money(10.99),
            Expense,
            "SPOTIFY USA".into(),
            "Subscriptions",
            Some("spotify"),
        );
        push(
            &mut out,
            month_day(y, m, 12),
            money(2.99),
            Expense,
            "APPLE.COM/BILL ICLOUD".into(),
            "Subscriptions",
            Some("icloud"),
        );
        push(
            &mut out,
            month_day(y, m, 1),
            money(24.99),
            Expense,
            "PLANET FITNESS CLUB FEES".into(),
            "Fitness",
            Some("gym"),
        );
        if m == 4 {
            push(
                &mut out,
                month_day(y, m, 22),
                money(139.00),
                Expense,
                "AMAZON PRIME*MEMBERSHIP".into(),
                "Subscriptions",
                Some("prime"),
            );
        }
        if rng.chance(0.35) {
            let day = rng.range(1, 28) as u32;
            push(
                &mut out,
                month_day(y, m, day),
                money(200.0 + 1300.0 * rng.f64()),
                Income,
                format!("UPWORK ESCROW {}", render("{ref}", &mut rng)),
                "Freelance Income",
                None,
            );
        }
        if rng.chance(0.25) {
            let day = rng.range(1, 28) as u32;
            push(
                &mut out,
                month_day(y, m, day),
                money(5.0 + 80.0 * rng.f64()),
                Income,
                format!("AMAZON.COM REFUND {}", render("{ref}", &mut rng)),
                "Refunds",
                None,
            );
        }
        if m % 3 == 0 {
            push(
                &mut out,
                month_day(y, m, 28),
                money(18.0 + 10.0 * rng.f64()),
                Income,
                "VANGUARD DIVIDEND REINVEST".into(),
                "Investment Income",
                Some("dividend"),
            );
        }
        month_index += 1;
        ym = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }

    // Discretionary spending fills up to the requested count, spread over days by weekday and season.
    let days: Vec<NaiveDate> = start.iter_days().take_while(|d| *d <= spec.end).collect();
    let remaining = spec.transactions.saturating_sub(out.len());
    if remaining > 0 && !days.is_empty() {
        let per_day = remaining as f64 / days.len() as f64;
        let mut carry = 0.0;
        let mut made = 0usize;
        for (i, day) in days.iter().enumerate() {
            let weekend = matches!(day.weekday(), Weekday::Fri | Weekday::Sat);
            carry += per_day * if weekend { 1.25 } else { 0.9 };
            let mut count = carry.floor() as usize;
            carry -= count as f64;
            if i + 1 == days.len() {
                count = remaining.saturating_sub(made);
            }
            count = count.min(remaining - made);
            // The day's weights, seasons included: drawing from the unseasoned total would starve
            // the patterns listed after a seasonal one in its high months.
            let weights: Vec<f64> = PATTERNS
                .iter()
                .map(|p| {
                    p.weight
                        * season(p.category, day.month())
                        * if weekend && p.category == "Dining" { 1.5 } else { 1.0 }
                })
                .collect();
            let day_total: f64 = weights.iter().sum();
            for _ in 0..count {
                let mut pick = rng.f64() * day_total;
                let mut pattern = &PATTERNS[PATTERNS.len() - 1];
                for (p, w) in PATTERNS.iter().zip(&weights) {
                    if pick < *w {
                        pattern = p;
                        break;
                    }
                    pick -= w;
                }
                let amount = pattern.min + (pattern.max - pattern.min) * rng.f64().powf(1.6);
                let template = *rng.pick(pattern.merchants);
                let description = render(template, &mut rng);
                out.push(DemoTransaction {
                    date: *day,
                    amount: money(amount),
                    kind: TransactionType::Expense,
                    description,
                    category: pattern.category,
                    series: None,
                });
                made += 1;
            }
        }
    }
    out.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.description.cmp(&b.description)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(n: usize, seed: u64) -> DemoSpec {
        DemoSpec { transactions: n, end: NaiveDate::from_ymd_opt(2026, 11, 29).unwrap(), months: 36, seed }
    }

    #[test]
    fn the_same_seed_gives_the_same_history() {
        assert_eq!(generate(spec(2_000, 7)), generate(spec(2_000, 7)));
        assert_ne!(generate(spec(2_000, 7)), generate(spec(2_000, 8)));
    }

    #[test]
    fn the_count_and_the_period_are_respected() {
        let h = generate(spec(100_000, 1));
        assert!((99_000..=100_500).contains(&h.len()), "{}", h.len());
        assert!(h.first().unwrap().date >= NaiveDate::from_ymd_opt(2023, 11, 30).unwrap());
        assert!(h.last().unwrap().date <= NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
        assert!(h.iter().all(|t| magpie_domain::taxonomy::is_default(t.category)));
    }

    #[test]
    fn recurring_series_are_monthly_and_salary_rises() {
        let h = generate(spec(3_000, 3));
        let salaries: Vec<_> = h.iter().filter(|t| t.series == Some("salary")).collect();
        assert!((35..=37).contains(&salaries.len()), "{}", salaries.len());
        assert!(salaries.last().unwrap().amount > salaries.first().unwrap().amount);
        let netflix: Vec<_> = h.iter().filter(|t| t.series == Some("netflix")).map(|t| t.amount.to_string()).collect();
        assert!(netflix.first().unwrap() == "15.49" && netflix.last().unwrap() == "17.99");
    }

    #[test]
    fn december_has_more_shopping_than_march() {
        let h = generate(spec(20_000, 5));
        let count = |m| h.iter().filter(|t| t.category == "Shopping" && t.date.month() == m).count();
        assert!(count(12) > count(3) * 3 / 2, "dec {} mar {}", count(12), count(3));
    }
}
