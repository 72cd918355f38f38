//! The Magpie server: the `magpie` binary's library. `main.rs` only calls [`cli::run`].
//!
//! * [`api`]: one router per resource under `/api/v1`, plus system routes;
//! * [`http`]: middleware and extractors shared by every route;
//! * [`app`]: state, router assembly, the server loop;
//! * [`ml`]: categorization (rules, remembered corrections, models) and training runs;
//! * [`jobs`]: the background worker;
//! * [`planning`]: budget status and goal projections; [`forecasting`]: forecasts;
//! * [`import`]: the statement import pipeline;
//! * [`sync`]: bank sync (jobs, scheduling, applying what providers return); [`sealing`]: token encryption;
//! * [`config`], [`telemetry`], [`error`], [`cli`].

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod files;
pub mod forecasting;
pub mod http;
pub mod import;
pub mod jobs;
pub mod ledger_cache;
pub mod ml;
pub mod planning;
pub mod sealing;
pub mod sync;
pub mod telemetry;
pub mod web;
