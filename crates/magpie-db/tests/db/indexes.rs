//! Every index the seed lists exists on both engines, and PostgreSQL's planner uses the named index for
//! each of the seed's five "common query patterns".

use chrono::Datelike;
use magpie_db::{Db, Engine, db_test, on_conn};

use crate::support::*;

/// (index name, table, columns in order, unique). The seed's names where it gives them
/// (`idx_transactions_user_date`, ...), the same pattern elsewhere.
const SEED_INDEXES: &[(&str, &str, &[&str], bool)] = &[
    ("idx_users_email", "users", &["email"], true),
    ("idx_transactions_user_id", "transactions", &["user_id"], false),
    ("idx_transactions_date", "transactions", &["date"], false),
    ("idx_transactions_category", "transactions", &["category"], false),
    ("idx_transactions_user_date", "transactions", &["user_id", "date"], false),
    ("idx_transactions_user_category", "transactions", &["user_id", "category"], false),
    ("idx_transactions_user_type", "transactions", &["user_id", "type"], false),
    ("idx_transactions_deleted_at", "transactions", &["deleted_at"], false),
    ("idx_budgets_user_id", "budgets", &["user_id"], false),
    ("idx_budgets_period_start", "budgets", &["period_start"], false),
    ("idx_budgets_period_end", "budgets", &["period_end"], false),
    ("idx_budgets_user_period", "budgets", &["user_id", "period_start", "period_end"], false),
    ("idx_financial_goals_user_id", "financial_goals", &["user_id"], false),
    ("idx_financial_goals_status", "financial_goals", &["status"], false),
    ("idx_financial_goals_user_status", "financial_goals", &["user_id", "status"], false),
    ("idx_financial_goals_user_deadline", "financial_goals", &["user_id", "deadline"], false),
    ("idx_ml_models_model_type", "ml_models", &["model_type"], false),
    ("idx_ml_models_is_active", "ml_models", &["is_active"], false),
    ("idx_ml_models_type_active", "ml_models", &["model_type", "is_active"], false),
    ("idx_ml_models_user_type", "ml_models", &["user_id", "model_type"], false),
    ("idx_ml_models_user_type_active", "ml_models", &["user_id", "model_type", "is_active"], false),
    ("idx_connections_user_id", "connections", &["user_id"], false),
    ("idx_connections_status", "connections", &["status"], false),
    ("idx_connections_user_status", "connections", &["user_id", "status"], false),
    ("idx_connections_user_institution", "connections", &["user_id", "institution_id"], false),
];

/// (table, column) of every index in the current schema, in index column order, with uniqueness.
async fn actual_indexes(db: &Db) -> Vec<(String, String, Vec<String>, bool)> {
    let mut c = db.conn().await.unwrap();
    match db.engine() {
        Engine::Postgres => {
            let rows: Vec<(String, String, String, bool)> = on_conn!(c.c(), c => sqlx::query_as(
                "select i.relname::text, t.relname::text, \
                        array_to_string(array(select a.attname::text from unnest(ix.indkey) with ordinality k(attnum, ord) \
                              join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum order by k.ord), ','), \
                        ix.indisunique \
                 from pg_index ix join pg_class i on i.oid = ix.indexrelid join pg_class t on t.oid = ix.indrelid \
                 join pg_namespace n on n.oid = t.relnamespace where n.nspname = current_schema()")
                .fetch_all(&mut *c).await.unwrap());
            rows.into_iter().map(|(i, t, cols, u)| (i, t, cols.split(',').map(str::to_owned).collect(), u)).collect()
        }
        Engine::Sqlite => {
            let names: Vec<(String, String)> = on_conn!(c.c(), c => sqlx::query_as(
                "select name, tbl_name from sqlite_master where type = 'index'").fetch_all(&mut *c).await.unwrap());
            let mut out = Vec::new();
            for (name, table) in names {
                let cols: Vec<String> = on_conn!(c.c(), c => sqlx::query_scalar(
                    "select name from pragma_index_info($1) order by seqno").bind(&name).fetch_all(&mut *c).await.unwrap());
                let unique: i64 = on_conn!(c.c(), c => sqlx::query_scalar(
                    "select \"unique\" from pragma_index_list($1) where name = $2").bind(&table).bind(&name).fetch_one(&mut *c).await.unwrap());
                out.push((name, table, cols, unique == 1));
            }
            out
        }
    }
}

db_test!(every_seed_index_exists_with_its_columns, |db| {
    let actual = actual_indexes(db).await;
    for (name, table, cols, unique) in SEED_INDEXES {
        let found =
            actual.iter().find(|a| a.0 == *name).unwrap_or_else(|| panic!("index {name} missing on {:?}", db.engine()));
        assert_eq!(found.1, *table, "{name} table");
        assert_eq!(found.2, cols.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name} columns");
        assert_eq!(found.3, *unique, "{name} uniqueness");
    }
});

/// Load enough rows that an index is the planner's honest choice: 200 users, with many transactions,
/// budgets, goals and models each, then ANALYZE.
async fn load(db: &Db) -> uuid::Uuid {
    let mut c = db.conn().await.unwrap();
    let users: Vec<uuid::Uuid> = (0..200).map(|_| uuid::Uuid::new_v4()).collect();
    on_conn!(c.c(), c => {
        use sqlx::Connection;
        let mut tx = c.begin().await.unwrap();
        for (n, u) in users.iter().enumerate() {
            sqlx::query("insert into users (id, email, password_hash, created_at, updated_at) values ($1, $2, 'x', $3, $3)")
                .bind(u).bind(format!("load{n}@example.com")).bind(magpie_domain::Timestamp::now())
                .execute(&mut *tx).await.unwrap();
        }
        let categories = ["Groceries", "Dining", "Rent", "Salary", "Transportation", "Entertainment", "Utilities", "Health"];
        for (n, u) in users.iter().enumerate() {
            for i in 0..100 {
                let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new((i * 7 + n) as u64 % 1000);
                sqlx::query("insert into transactions (id, user_id, amount, date, description, category, type, source, created_at, updated_at) \
                             values ($1, $2, $3, $4, 'x', $5, 'EXPENSE', 'MANUAL', $6, $6)")
                    .bind(uuid::Uuid::new_v4()).bind(u).bind(magpie_domain::Money::from_cents(100 + i as i64)).bind(date)
                    .bind(categories[i % categories.len()]).bind(magpie_domain::Timestamp::now())
                    .execute(&mut *tx).await.unwrap();
            }
            // Two years of monthly budgets around today, so "the current period" is a realistic slice.
            let first = chrono::Utc::now().date_naive().with_day(1).unwrap() - chrono::Months::new(20);
            for m in 0..24u32 {
                let start = first + chrono::Months::new(m);
                let end = start + chrono::Months::new(1) - chrono::Days::new(1);
                sqlx::query("insert into budgets (id, user_id, name, period_start, period_end, allocations, created_at, updated_at) \
                             values ($1, $2, 'b', $3, $4, '{}', $5, $5)")
                    .bind(uuid::Uuid::new_v4()).bind(u).bind(start).bind(end).bind(magpie_domain::Timestamp::now())
                    .execute(&mut *tx).await.unwrap();
            }
            for (g, status) in ["ACTIVE", "ACHIEVED", "ARCHIVED", "ARCHIVED", "ACHIEVED"].iter().enumerate() {
                sqlx::query("insert into financial_goals (id, user_id, name, target_amount, status, created_at, updated_at) \
                             values ($1, $2, 'g', $3, $4, $5, $5)")
                    .bind(uuid::Uuid::new_v4()).bind(u).bind(magpie_domain::Money::from_cents(10_000 + g as i64)).bind(*status)
                    .bind(magpie_domain::Timestamp::now())
                    .execute(&mut *tx).await.unwrap();
            }
            for v in 0..6 {
                sqlx::query("insert into ml_models (id, model_type, user_id, version, trained_at, model_path, is_active) \
                             values ($1, $2, $3, $4, $5, 'm', $6)")
                    .bind(uuid::Uuid::new_v4()).bind(if v % 2 == 0 { "CATEGORIZATION" } else { "PREDICTION" }).bind(u)
                    .bind(v.to_string()).bind(magpie_domain::Timestamp::now()).bind(v >= 4)
                    .execute(&mut *tx).await.unwrap();
            }
        }
        tx.commit().await.unwrap();
        sqlx::query("analyze").execute(&mut *c).await.unwrap();
    });
    users[17]
}

/// The seed's five query patterns with the index each should use.
fn seed_queries(db: &Db, user: uuid::Uuid) -> Vec<(&'static str, String)> {
    let u = uuid_lit(db, user);
    let today = match db.engine() {
        Engine::Postgres => "current_date",
        Engine::Sqlite => "date('now')",
    };
    vec![
        (
            "idx_transactions_user_date",
            format!(
                "select * from transactions where user_id = {u} and date between '2024-03-01' and '2024-03-31' order by date desc"
            ),
        ),
        (
            "idx_transactions_user_category",
            format!("select * from transactions where user_id = {u} and category = 'Dining'"),
        ),
        (
            "idx_budgets_user_period",
            format!("select * from budgets where user_id = {u} and period_start <= {today} and period_end >= {today}"),
        ),
        (
            "idx_financial_goals_user_status",
            format!("select * from financial_goals where user_id = {u} and status = 'ACTIVE'"),
        ),
        (
            "idx_ml_models_user_type_active",
            format!(
                "select * from ml_models where user_id = {u} and model_type = 'CATEGORIZATION' and is_active = true limit 1"
            ),
        ),
    ]
}

db_test!(each_seed_query_pattern_uses_its_index, |db| {
    let user = load(db).await;
    let mut c = db.conn().await.unwrap();
    for (index, sql) in seed_queries(db, user) {
        let plan: String = match db.engine() {
            Engine::Postgres => {
                // Sequential scans are disabled for the check so that the planner's choice between indexes is
                // what is being tested, not whether 20k rows are worth an index at all.
                let rows: Vec<String> = on_conn!(c.c(), c => {
                    use sqlx::Connection;
                    let mut tx = c.begin().await.unwrap();
                    sqlx::query("set local enable_seqscan = off").execute(&mut *tx).await.unwrap();
                    let r = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("explain {sql}"))).fetch_all(&mut *tx).await.unwrap();
                    tx.rollback().await.unwrap();
                    r
                });
                rows.join("\n")
            }
            Engine::Sqlite => {
                let rows: Vec<(i64, i64, i64, String)> = on_conn!(c.c(), c => sqlx::query_as(
                    sqlx::AssertSqlSafe(format!("explain query plan {sql}"))).fetch_all(&mut *c).await.unwrap());
                rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
            }
        };
        assert!(plan.contains(index), "{:?}: expected {index} in the plan of\n{sql}\n---\n{plan}", db.engine());
    }
});
