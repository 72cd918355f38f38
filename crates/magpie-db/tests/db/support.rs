//! Helpers shared by the data-layer tests.

use chrono::NaiveDate;
use magpie_db::{Db, Engine, on_conn, users};
use magpie_domain::{Email, PasswordHash, UserId};

/// A user with a unique email.
pub async fn user(db: &Db) -> UserId {
    let mut c = db.conn().await.unwrap();
    let email = Email::parse(&format!("u{}@example.com", uuid::Uuid::new_v4().simple())).unwrap();
    users::create(
        c.c(),
        &users::NewUser {
            email,
            password_hash: PasswordHash::new("$2b$04$notarealhashbutlongenoughtolookrealistic"),
            first_name: Some("Ada".into()),
            last_name: None,
        },
    )
    .await
    .unwrap()
    .id
}

/// A date.
pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Run a statement with literal values spliced in (tests only) and return its error text, if any.
pub async fn exec(db: &Db, sql: String) -> Result<u64, magpie_db::DbError> {
    let mut c = db.conn().await.unwrap();
    let r =
        on_conn!(c.c(), c => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *c).await.map(|r| r.rows_affected()));
    r.map_err(Into::into)
}

/// Count rows of a query.
pub async fn count(db: &Db, sql: String) -> i64 {
    let mut c = db.conn().await.unwrap();
    on_conn!(c.c(), c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *c).await.unwrap())
}

/// A UUID literal in the engine's syntax.
pub fn uuid_lit(db: &Db, id: uuid::Uuid) -> String {
    match db.engine() {
        Engine::Sqlite => format!("x'{}'", id.simple()),
        Engine::Postgres => format!("'{id}'"),
    }
}

/// A money literal in the engine's storage (cents on SQLite, decimal on PostgreSQL).
pub fn money_lit(db: &Db, decimal: &str) -> String {
    match db.engine() {
        Engine::Sqlite => {
            let m: magpie_domain::Money = decimal.parse().unwrap();
            m.cents().to_string()
        }
        Engine::Postgres => decimal.to_owned(),
    }
}

/// A confidence literal (hundredths on SQLite, decimal on PostgreSQL); `hundredths` may be out of range.
pub fn confidence_lit(db: &Db, hundredths: i64) -> String {
    match db.engine() {
        Engine::Sqlite => hundredths.to_string(),
        Engine::Postgres => format!("{}", rust_decimal::Decimal::new(hundredths, 2)),
    }
}

/// A timestamp literal.
pub fn now_lit() -> String {
    // PostgreSQL ignores the zone suffix for a TIMESTAMP; SQLite stores the text as the codec writes it.
    format!("'{}'", magpie_domain::Timestamp::now().to_sqlite_text())
}
