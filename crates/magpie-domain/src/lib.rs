//! Magpie's domain types.
//!
//! Everything that crosses a module boundary as money, an id, an enum of the seed schema, a timestamp or a
//! confidence score is one of these types. Each has one way in (`parse`, `TryFrom`, or a constructor that
//! cannot fail), so a value that exists is valid: after the edge of the system nothing re-checks.
//!
//! This crate does no IO. With the `sqlx` feature it also carries the per-engine database codecs
//! (see [`codec`]), because Rust's orphan rule only lets the crate that owns a type implement a foreign
//! trait for it.

pub mod budget;
pub mod confidence;
pub mod enums;
pub mod ids;
pub mod input;
pub mod money;
pub mod taxonomy;
pub mod text;
pub mod time;

#[cfg(feature = "sqlx")]
pub mod codec;

pub use budget::Allocations;
pub use confidence::Confidence;
pub use enums::{
    BankProvider, CategorySource, ConnectionStatus, GoalStatus, JobStatus, ModelType, RuleMatch, Source, TokenScope,
    TransactionType,
};
pub use ids::{
    BudgetId, ConnectionId, GoalId, ImportBatchId, JobId, ModelId, RuleId, SessionId, TokenId, TransactionId, UserId,
};
pub use money::Money;
pub use text::{Category, Email, NewPassword, PasswordHash, SealedToken, TextError, parse_name};
pub use time::Timestamp;

/// Why a raw value could not become a domain value. The message is written for the person who sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    /// A parse error with the given human-readable message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
