//! Bank aggregators: a [`Provider`] trait and real HTTP clients for Plaid, SimpleFIN and GoCardless Bank
//! Account Data, plus the pure [`reconcile`] step that turns what a provider returned into changes to
//! the stored rows. No database and no server here: the server opens the sealed token, calls
//! [`Provider::sync`], plans with [`reconcile::plan`] and applies the plan in one database transaction
//! together with the new [`Batch::state`].
//!
//! Conventions every client follows (`../shared/specs/bank-sync-protocols.md` §5):
//! * one sign convention: a positive [`Txn::amount`] is money **in** (Plaid's amounts are negated);
//! * one decimal type: `rust_decimal::Decimal`, parsed from the provider's text (Plaid's JSON numbers
//!   through their shortest round-trip text, never through float arithmetic);
//! * errors as [`SyncError`], already mapped to what the connection's status should become;
//! * secrets ([`Secret`]) are never in a `Debug`, a log line or an error message.

pub mod categories;
pub mod error;
pub mod gocardless;
mod http;
pub mod model;
pub mod plaid;
pub mod reconcile;
pub mod simplefin;

use std::future::Future;

pub use error::{SyncError, sanitize};
pub use model::{Account, Batch, Linked, Notice, ProviderCategory, Secret, SyncOptions, Txn, TxnRef, Window};

pub use magpie_domain::BankProvider;

/// What every aggregator client does once a connection exists. Linking differs per provider (a
/// public token, a setup token, a requisition), so each client has its own `connect`.
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> BankProvider;

    /// Everything new since `state` (the previous [`Batch::state`], or [`Linked::state`]): accounts,
    /// added/changed and removed transactions, and the state to store **with** the data. Nothing is
    /// returned until the whole update has been read, so a failure leaves nothing half-applied.
    fn sync(
        &self,
        secret: &Secret,
        state: &serde_json::Value,
        options: &SyncOptions,
    ) -> impl Future<Output = Result<Batch, SyncError>> + Send;

    /// Revoke the access at the provider (Plaid `/item/remove`, GoCardless requisition deletion). Access
    /// that is already gone counts as revoked.
    fn revoke(&self, secret: &Secret) -> impl Future<Output = Result<(), SyncError>> + Send;
}

/// Install rustls' ring provider as the process default, once. reqwest is built without a provider
/// (aws-lc-rs, its default, needs cmake and a long C build); every client calls this before building
/// its HTTP client.
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another library installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
