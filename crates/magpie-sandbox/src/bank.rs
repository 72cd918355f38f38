//! Fake banks: accounts and a ledger generated from a seed, and the events a real bank produces
//! (new transactions, pending ones that post, sometimes under another id or amount, removals, edits).
//! Every change is appended to the bank's change log, which is what Plaid's cursor walks.

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

/// Which protocol a bank is reached through (it shapes ids and texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// Plaid.
    Plaid,
    /// SimpleFIN.
    Simplefin,
    /// GoCardless.
    Gocardless,
}

/// splitmix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// Next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A merchant the generator draws from: raw bank text, clean name, Plaid category, amount range in
/// cents, money in or out, and how often it appears.
struct Merchant {
    raw: &'static str,
    name: &'static str,
    primary: &'static str,
    detailed: &'static str,
    min: i64,
    max: i64,
    income: bool,
    weight: u64,
}

const fn m(
    raw: &'static str,
    name: &'static str,
    primary: &'static str,
    detailed: &'static str,
    min: i64,
    max: i64,
    weight: u64,
) -> Merchant {
    Merchant { raw, name, primary, detailed, min, max, income: false, weight }
}

const MERCHANTS: &[Merchant] = &[
    m("SQ *BLUE BOTTLE 0412", "Blue Bottle Coffee", "FOOD_AND_DRINK", "FOOD_AND_DRINK_COFFEE", 350, 900, 10),
    m("STARBUCKS STORE 10921", "Starbucks", "FOOD_AND_DRINK", "FOOD_AND_DRINK_COFFEE", 300, 1200, 10),
    m("WHOLEFDS MKT 10234", "Whole Foods", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES", 2500, 18000, 12),
    m("TRADER JOE S #552", "Trader Joe's", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES", 1800, 12000, 10),
    m("CHIPOTLE 1187", "Chipotle", "FOOD_AND_DRINK", "FOOD_AND_DRINK_FAST_FOOD", 900, 2600, 8),
    m("THE LOCAL BISTRO", "The Local Bistro", "FOOD_AND_DRINK", "FOOD_AND_DRINK_RESTAURANT", 3000, 12000, 5),
    m("UBER *TRIP HELP.UBER.COM", "Uber", "TRANSPORTATION", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", 800, 4500, 6),
    m("SHELL OIL 57442", "Shell", "TRANSPORTATION", "TRANSPORTATION_GAS", 2500, 7500, 5),
    m("NETFLIX.COM", "Netflix", "ENTERTAINMENT", "ENTERTAINMENT_TV_AND_MOVIES", 1549, 1549, 2),
    m("SPOTIFY USA", "Spotify", "ENTERTAINMENT", "ENTERTAINMENT_MUSIC_AND_AUDIO", 1099, 1099, 2),
    m("AMAZON MKTPL*2K4", "Amazon", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES", 900, 15000, 9),
    m("TARGET 00012", "Target", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_SUPERSTORES", 1200, 9000, 6),
    m("COMCAST CABLE", "Comcast", "RENT_AND_UTILITIES", "RENT_AND_UTILITIES_INTERNET_AND_CABLE", 7999, 7999, 1),
    m("PG&E WEB ONLINE", "PG&E", "RENT_AND_UTILITIES", "RENT_AND_UTILITIES_GAS_AND_ELECTRICITY", 6000, 16000, 1),
    m("CITY PROPERTY MGMT RENT", "City Property", "RENT_AND_UTILITIES", "RENT_AND_UTILITIES_RENT", 185000, 185000, 1),
    m("CVS/PHARMACY #0871", "CVS", "MEDICAL", "MEDICAL_PHARMACIES_AND_SUPPLEMENTS", 600, 5000, 3),
    m("EQUINOX MEMBERSHIP", "Equinox", "PERSONAL_CARE", "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS", 4500, 4500, 1),
    m("DELTA AIR 0062345", "Delta", "TRAVEL", "TRAVEL_FLIGHTS", 18000, 60000, 1),
    m("MONTHLY SERVICE FEE", "", "BANK_FEES", "BANK_FEES_OTHER_BANK_FEES", 500, 1200, 1),
    m("ATM WITHDRAWAL 4471", "", "TRANSFER_OUT", "TRANSFER_OUT_WITHDRAWAL", 2000, 20000, 2),
    Merchant {
        raw: "ACME CORP PAYROLL",
        name: "Acme Corp",
        primary: "INCOME",
        detailed: "INCOME_WAGES",
        min: 280000,
        max: 320000,
        income: true,
        weight: 3,
    },
    Merchant {
        raw: "VENMO CASHOUT",
        name: "Venmo",
        primary: "TRANSFER_IN",
        detailed: "TRANSFER_IN_ACCOUNT_TRANSFER",
        min: 1000,
        max: 20000,
        income: true,
        weight: 2,
    },
];

/// An account.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BankAccount {
    /// Provider id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Last digits.
    pub mask: String,
    /// `depository` or `credit`.
    pub kind: &'static str,
    /// ISO currency.
    pub currency: &'static str,
    /// IBAN (GoCardless).
    pub iban: String,
}

/// A transaction as the bank has it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BankTxn {
    /// Provider id (GoCardless pending rows do not show it).
    pub id: String,
    /// Index into the accounts.
    pub account: usize,
    /// Date.
    pub date: NaiveDate,
    /// Signed amount, positive = money in.
    pub amount: Decimal,
    /// Raw bank text.
    pub description: String,
    /// Clean merchant name (may be empty).
    pub merchant: String,
    /// Pending.
    pub pending: bool,
    /// The pending transaction this posted one replaces (Plaid).
    pub pending_of: Option<String>,
    /// Plaid category.
    pub category: Option<(&'static str, &'static str)>,
    /// Gone.
    pub removed: bool,
}

/// One entry of the change log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A transaction appeared.
    Added(usize),
    /// A transaction changed.
    Modified(usize),
    /// A transaction went.
    Removed(usize),
}

/// A fake bank.
#[derive(Debug, Clone)]
pub struct Bank {
    /// Index in the world.
    pub id: usize,
    /// Protocol.
    pub via: Via,
    /// Institution id.
    pub institution_id: String,
    /// Institution name.
    pub institution_name: String,
    /// Accounts.
    pub accounts: Vec<BankAccount>,
    /// The ledger, in creation order.
    pub txns: Vec<BankTxn>,
    /// Every change, in order (Plaid's cursor is a position in it).
    pub log: Vec<Change>,
    /// Bumped by every change (a mid-pagination Plaid cursor from an older version is stale).
    pub version: u64,
    rng: Rng,
    next: u64,
}

impl Bank {
    /// A bank with `count` transactions over the `days` days up to `today`; the last two days' rows
    /// are partly pending.
    pub fn generate(id: usize, via: Via, seed: u64, today: NaiveDate, days: u32, count: usize) -> Bank {
        let (institution_id, institution_name) = match via {
            Via::Plaid => ("ins_109508", "First Platypus Bank"),
            Via::Simplefin => ("ORG-SANDBOX", "Sandbox Credit Union"),
            Via::Gocardless => ("SANDBOXFINANCE_SFIN0000", "Sandbox Finance"),
        };
        let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(id as u64));
        let accounts = (0..2)
            .map(|i| {
                let credit = i == 1;
                let id = match via {
                    Via::Plaid => format!("acc_{id}_{}", if credit { "card" } else { "chk" }),
                    Via::Simplefin => format!("ACT-{id}-{}", i + 1),
                    Via::Gocardless => format!("{:08x}-0000-4000-8000-{:012x}", id, i + 1),
                };
                let mask = format!("{:04}", rng.below(10_000));
                BankAccount {
                    id,
                    name: if credit { "Sandbox Credit Card".into() } else { "Sandbox Checking".into() },
                    iban: format!("GB{:02}SAND{:014}", rng.below(100), rng.below(100_000_000_000_000)),
                    mask,
                    kind: if credit { "credit" } else { "depository" },
                    currency: if via == Via::Gocardless { "EUR" } else { "USD" },
                }
            })
            .collect();
        let mut bank = Bank {
            id,
            via,
            institution_id: institution_id.into(),
            institution_name: institution_name.into(),
            accounts,
            txns: Vec::with_capacity(count),
            log: Vec::with_capacity(count),
            version: 0,
            rng,
            next: 0,
        };
        let days = i64::from(days.max(1));
        for i in 0..count {
            let back = days - 1 - (i as i64 * days) / count.max(1) as i64;
            let date = today - Days::new(back.max(0) as u64);
            let pending = back <= 1 && bank.rng.chance(40);
            bank.add_random(date, pending);
        }
        bank
    }

    fn next_id(&mut self, pending: bool) -> String {
        self.next += 1;
        let n = self.next;
        match self.via {
            Via::Plaid => format!("{}tx{}_{n}", if pending { "p" } else { "" }, self.id),
            Via::Simplefin => format!("TRN-{}-{n}", self.id),
            Via::Gocardless => format!("{:04}{:08}", self.id, n),
        }
    }

    fn add_random(&mut self, date: NaiveDate, pending: bool) -> usize {
        let total: u64 = MERCHANTS.iter().map(|m| m.weight).sum();
        let mut pick = self.rng.below(total);
        let merchant = MERCHANTS
            .iter()
            .find(|m| {
                if pick < m.weight {
                    true
                } else {
                    pick -= m.weight;
                    false
                }
            })
            .unwrap_or(&MERCHANTS[0]);
        let cents = merchant.min + self.rng.below((merchant.max - merchant.min + 1) as u64) as i64;
        let amount = Decimal::new(if merchant.income { cents } else { -cents }, 2);
        // Income lands on the checking account; spending is split between checking and the card.
        let account = if merchant.income || self.rng.chance(60) { 0 } else { 1 };
        let id = self.next_id(pending);
        self.push(BankTxn {
            id,
            account,
            date,
            amount,
            description: merchant.raw.to_owned(),
            merchant: merchant.name.to_owned(),
            pending,
            pending_of: None,
            category: Some((merchant.primary, merchant.detailed)),
            removed: false,
        })
    }

    fn push(&mut self, t: BankTxn) -> usize {
        self.txns.push(t);
        let i = self.txns.len() - 1;
        self.log.push(Change::Added(i));
        self.version += 1;
        i
    }

    /// Index of a live transaction by id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.txns.iter().position(|t| t.id == id && !t.removed)
    }

    /// Add a transaction; returns its id.
    pub fn add(
        &mut self,
        account: usize,
        date: NaiveDate,
        amount: Decimal,
        description: &str,
        pending: bool,
    ) -> String {
        let id = self.next_id(pending);
        self.push(BankTxn {
            id: id.clone(),
            account: account.min(self.accounts.len() - 1),
            date,
            amount,
            description: description.to_owned(),
            merchant: String::new(),
            pending,
            pending_of: None,
            category: None,
            removed: false,
        });
        id
    }

    /// Post a pending transaction on `date`: it goes, and a booked one under a new id (or the same id,
    /// `keep_id`) replaces it, for `amount` if given. Returns the booked id.
    pub fn post(&mut self, id: &str, date: NaiveDate, amount: Option<Decimal>, keep_id: bool) -> Option<String> {
        let i = self.find(id)?;
        if !self.txns[i].pending {
            return None;
        }
        if keep_id {
            let t = &mut self.txns[i];
            t.pending = false;
            t.date = date;
            if let Some(a) = amount {
                t.amount = a;
            }
            self.log.push(Change::Modified(i));
            self.version += 1;
            return Some(id.to_owned());
        }
        let mut booked = self.txns[i].clone();
        self.txns[i].removed = true;
        self.log.push(Change::Removed(i));
        booked.id = self.next_id(false);
        booked.pending = false;
        booked.pending_of = Some(id.to_owned());
        booked.date = date;
        if let Some(a) = amount {
            booked.amount = a;
        }
        let new_id = booked.id.clone();
        self.push(booked);
        Some(new_id)
    }

    /// Remove a transaction.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(i) = self.find(id) else { return false };
        self.txns[i].removed = true;
        self.log.push(Change::Removed(i));
        self.version += 1;
        true
    }

    /// Change a transaction's text.
    pub fn modify(&mut self, id: &str, description: &str) -> bool {
        let Some(i) = self.find(id) else { return false };
        self.txns[i].description = description.to_owned();
        self.txns[i].merchant = String::new();
        self.log.push(Change::Modified(i));
        self.version += 1;
        true
    }

    /// A day of activity on `today`: every pending row posts (one in five with a tip or a changed
    /// amount), and `new` transactions appear, some of them pending.
    pub fn activity(&mut self, today: NaiveDate, new: usize) -> usize {
        let pending: Vec<String> = self.txns.iter().filter(|t| t.pending && !t.removed).map(|t| t.id.clone()).collect();
        let mut changes = 0;
        for id in pending {
            let i = self.find(&id).expect("a live pending row");
            let changed = self.rng.chance(20);
            let amount = changed.then(|| {
                let a = self.txns[i].amount;
                (a + a * Decimal::new(15, 2)).round_dp(2)
            });
            let keep = self.via == Via::Plaid && self.rng.chance(10);
            self.post(&id, today, amount, keep);
            changes += 1;
        }
        for _ in 0..new {
            let pending = self.rng.chance(30);
            self.add_random(today, pending);
            changes += 1;
        }
        changes
    }

    /// The live transactions.
    pub fn live(&self) -> impl Iterator<Item = &BankTxn> {
        self.txns.iter().filter(|t| !t.removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banks_are_deterministic() {
        let today: NaiveDate = "2026-06-30".parse().unwrap();
        let a = Bank::generate(1, Via::Plaid, 7, today, 90, 300);
        let b = Bank::generate(1, Via::Plaid, 7, today, 90, 300);
        assert_eq!(a.txns.len(), 300);
        assert_eq!(format!("{:?}", a.txns), format!("{:?}", b.txns));
        assert!(a.txns.iter().any(|t| t.pending));
        assert!(a.txns.iter().all(|t| t.date <= today && t.date > today - Days::new(90)));
        let c = Bank::generate(2, Via::Plaid, 7, today, 90, 300);
        assert_ne!(format!("{:?}", a.txns), format!("{:?}", c.txns));
    }

    #[test]
    fn posting_replaces_the_pending_row() {
        let today: NaiveDate = "2026-06-30".parse().unwrap();
        let mut bank = Bank::generate(1, Via::Plaid, 7, today, 10, 0);
        let p = bank.add(0, today, Decimal::new(-1250, 2), "COFFEE", true);
        let q = bank.post(&p, today, Some(Decimal::new(-1500, 2)), false).unwrap();
        assert_ne!(p, q);
        assert!(bank.find(&p).is_none());
        let posted = &bank.txns[bank.find(&q).unwrap()];
        assert_eq!(
            (posted.pending, posted.pending_of.as_deref(), posted.amount),
            (false, Some(p.as_str()), Decimal::new(-1500, 2))
        );
        assert_eq!(bank.log.len(), 3);
    }
}
