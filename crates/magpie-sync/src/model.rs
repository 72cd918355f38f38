//! What providers return, in one shape for all three.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A credential: a Plaid access token, a SimpleFIN Access URL (it embeds a password), a GoCardless
/// requisition id. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret: use it, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A new link to a bank, ready to be stored (the secret sealed first).
#[derive(Debug, Clone)]
pub struct Linked {
    /// The credential to store sealed.
    pub secret: Secret,
    /// The provider's id of the link, for webhooks and duplicate checks (Plaid `item_id`, GoCardless
    /// requisition id, SimpleFIN: the Access URL's user name). Not secret.
    pub external_id: String,
    /// The provider's institution id (`ins_…`, `org_id`, `REVOLUT_REVOGB21`).
    pub institution_id: String,
    /// The institution's name.
    pub institution_name: String,
    /// When the bank's consent runs out, if it does (GoCardless agreements, Plaid EU items).
    pub consent_expires_at: Option<DateTime<Utc>>,
    /// Accounts found while linking.
    pub accounts: Vec<Account>,
    /// The sync state to start from.
    pub state: serde_json::Value,
}

/// A bank account behind a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The provider's account id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Last digits of the account number, when the provider gives them.
    pub mask: Option<String>,
    /// Kind (`depository`, `credit`, `CACC`, ...), as the provider says.
    pub kind: Option<String>,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// Current balance, positive = in credit (for credit cards: negative = owed).
    pub balance: Option<Decimal>,
    /// Available balance.
    pub available: Option<Decimal>,
}

/// A category the provider assigned, mapped onto the default taxonomy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderCategory {
    /// The taxonomy category.
    pub category: &'static str,
    /// The provider's confidence, 0 to 1 (`None`: it gave none).
    pub confidence: Option<Decimal>,
    /// The provider's own label (e.g. `FOOD_AND_DRINK_COFFEE`).
    pub raw: String,
}

/// One transaction as the provider has it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    /// The provider's account id.
    pub account_id: String,
    /// The provider's transaction id, unique within the account.
    pub id: String,
    /// The id is our own hash of the row's content (GoCardless rows without ids): it changes when the
    /// bank edits the row.
    pub weak_id: bool,
    /// Not yet booked.
    pub pending: bool,
    /// The pending transaction this booked one replaces (Plaid's `pending_transaction_id`).
    pub pending_of: Option<String>,
    /// Booking date (for pending rows, the date it happened).
    pub date: NaiveDate,
    /// Signed amount: positive = money in.
    pub amount: Decimal,
    /// ISO 4217 currency.
    pub currency: Option<String>,
    /// Description for people.
    pub description: String,
    /// Category from the provider, if it gave one we can map.
    pub category: Option<ProviderCategory>,
}

/// A transaction by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxnRef {
    /// The provider's account id.
    pub account_id: String,
    /// The provider's transaction id.
    pub id: String,
}

/// A date range of one account that this batch shows completely: a stored pending transaction dated
/// inside it that the batch does not contain has vanished (it posted, maybe under another id and
/// amount, or was dropped). Providers without explicit removals (SimpleFIN, GoCardless) report these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The provider's account id.
    pub account_id: String,
    /// First day (inclusive).
    pub from: NaiveDate,
    /// Last day (exclusive).
    pub to: NaiveDate,
}

/// Something the user should know about that did not stop the sync (sanitised provider text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable code (`con.auth`, `account_processing`, ...).
    pub code: String,
    /// Human text, free of URLs and credentials.
    pub message: String,
}

/// Everything one sync read, to be applied in one database transaction with `state`.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The connection's accounts.
    pub accounts: Vec<Account>,
    /// Transactions added or changed, at most one per id, in the provider's order.
    pub upserts: Vec<Txn>,
    /// Transactions the provider removed.
    pub removed: Vec<TxnRef>,
    /// Date ranges shown completely (see [`Window`]).
    pub windows: Vec<Window>,
    /// The state to store with the data (cursor, window ends, quotas).
    pub state: serde_json::Value,
    /// Problems that did not stop the sync.
    pub notices: Vec<Notice>,
    /// The connection needs the user (some accounts could not be read because the login expired); the
    /// rest of the batch is good. Becomes status EXPIRED.
    pub needs_reauth: Option<Notice>,
    /// Sync again after this long (the provider was not ready yet, or an account's quota ran out).
    pub retry_after: Option<Duration>,
    /// HTTP requests made.
    pub requests: u32,
}

/// Knobs of one sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// "Now" for date windows (tests and the emulator move it).
    pub now: DateTime<Utc>,
    /// How far back a first sync reaches, in days (window providers).
    pub initial_days: u32,
    /// How many days before the last window's end the next window starts, so that late postings and
    /// pending rows are seen again.
    pub overlap_days: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions { now: Utc::now(), initial_days: 90, overlap_days: 10 }
    }
}
