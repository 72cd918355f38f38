//! Integration tests of the data layer, each run on SQLite and (when `MAGPIE_TEST_DATABASE_URL` is set)
//! on PostgreSQL through `db_test!`.

mod indexes;
mod repos;
mod schema;
mod slow_log;
mod support;
mod upgrade;
