//! Magpie's data layer.
//!
//! One [`Db`] handle over SQLite (the embedded default) or PostgreSQL (production), chosen by the URL
//! scheme. SQL is written once, lowercase with `$n` placeholders (both sqlx drivers accept them), and the
//! [`on_conn!`] macro compiles each statement once per engine; only where the dialects differ is there an
//! explicit `match`. Migrations live per engine in `migrations/{sqlite,postgres}` with the same file names.
//!
//! Repository functions take a [`Conn`] (a pooled connection or an open transaction) and the acting user's
//! id: every query of user data is scoped by `user_id`, so another user's row is simply not found.

mod db;
mod error;

pub mod audit;
pub mod auth;
pub mod backup;
pub mod budgets;
pub mod connections;
pub mod goals;
pub mod imports;
pub mod jobs;
pub mod memory;
pub mod models;
pub mod rules;
pub mod security;
pub mod sync;
pub mod transactions;
pub mod uploads;
pub mod users;

#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Conn, Db, DbConn, DbOptions, DbTx, Engine, PoolStats};
pub use error::{DbError, Result};
