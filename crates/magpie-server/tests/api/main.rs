//! HTTP-level tests of the server: the real router driven in-process, and the real binary on a port.

mod auth;
mod backup;
mod binary;
mod browser;
mod categorization;
mod cli_import;
mod cli_ml;
mod corpus;
mod errors;
mod export;
mod hostile;
mod imports;
mod insights;
mod lifecycle;
mod logs;
mod planning;
mod replicas;
mod security;
mod support;
mod sync;
mod sync_process;
mod system;
mod tenancy;
mod transactions;
mod web;
mod webdriver;
