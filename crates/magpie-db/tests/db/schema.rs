//! The seed's constraints, foreign-key actions and money exactness, on both engines.

use magpie_db::{DbError, budgets, connections, db_test, goals, models, on_conn, transactions};
use magpie_domain::{
    Allocations, Category, ConnectionId, ModelType, Money, SealedToken, Source, Timestamp, TransactionType,
};

use crate::support::*;

/// An INSERT into `transactions` with one column's value replaced by `override_`.
async fn insert_tx(db: &magpie_db::Db, column: &str, value: &str) -> Result<u64, DbError> {
    let user = user(db).await;
    let mut cols = vec![
        ("id", uuid_lit(db, uuid::Uuid::new_v4())),
        ("user_id", uuid_lit(db, user.0)),
        ("amount", money_lit(db, "12.30")),
        ("date", "'2026-01-15'".to_owned()),
        ("description", "'Coffee'".to_owned()),
        ("category", "'Dining'".to_owned()),
        ("type", "'EXPENSE'".to_owned()),
        ("source", "'MANUAL'".to_owned()),
        ("confidence_score", "null".to_owned()),
        ("created_at", now_lit()),
        ("updated_at", now_lit()),
    ];
    for c in &mut cols {
        if c.0 == column {
            c.1 = value.to_owned();
        }
    }
    let names: Vec<_> = cols.iter().map(|c| c.0).collect();
    let values: Vec<_> = cols.iter().map(|c| c.1.clone()).collect();
    exec(db, format!("insert into transactions ({}) values ({})", names.join(", "), values.join(", "))).await
}

fn assert_check(r: Result<u64, DbError>, constraint: &str) {
    match r {
        Err(DbError::CheckViolation { constraint: c }) => assert_eq!(c, constraint),
        other => panic!("expected CHECK {constraint} to reject the row, got {other:?}"),
    }
}

db_test!(a_valid_transaction_row_is_accepted, |db| {
    assert_eq!(insert_tx(db, "", "").await.unwrap(), 1);
    assert_eq!(insert_tx(db, "confidence_score", &confidence_lit(db, 100)).await.unwrap(), 1);
    assert_eq!(insert_tx(db, "confidence_score", &confidence_lit(db, 0)).await.unwrap(), 1);
    assert_eq!(insert_tx(db, "amount", &money_lit(db, "0.00")).await.unwrap(), 1);
});

db_test!(transaction_checks_reject_bad_rows, |db| {
    assert_check(insert_tx(db, "type", "'TRANSFER'").await, "ck_transactions_type");
    assert_check(insert_tx(db, "type", "'income'").await, "ck_transactions_type");
    assert_check(insert_tx(db, "source", "'CSV'").await, "ck_transactions_source");
    assert_check(insert_tx(db, "amount", &money_lit(db, "-0.01")).await, "ck_transactions_amount");
    assert_check(insert_tx(db, "confidence_score", &confidence_lit(db, 101)).await, "ck_transactions_confidence");
    assert_check(insert_tx(db, "confidence_score", &confidence_lit(db, -1)).await, "ck_transactions_confidence");
});

db_test!(amounts_beyond_numeric_12_2_are_rejected, |db| {
    // 10,000,000,000.00 needs 13 digits: PostgreSQL's NUMERIC(12,2) overflows, SQLite's CHECK refuses.
    let r = insert_tx(db, "amount", &money_lit(db, "10000000000.00")).await;
    assert!(r.is_err(), "an amount beyond NUMERIC(12,2) must be rejected, got {r:?}");
    assert_eq!(insert_tx(db, "amount", &money_lit(db, "9999999999.99")).await.unwrap(), 1);
});

db_test!(a_malformed_date_is_rejected, |db| {
    if db.engine() == magpie_db::Engine::Sqlite {
        // PostgreSQL reads '2026-1-5' as a date and stores it canonically; SQLite would store the text as is.
        assert!(insert_tx(db, "date", "'2026-1-5'").await.is_err());
    }
    assert!(insert_tx(db, "date", "'2026-02-30'").await.is_err());
    assert!(insert_tx(db, "date", "'not a date'").await.is_err());
});

db_test!(goal_checks_reject_bad_rows, |db| {
    let user = user(db).await;
    let insert = |target: &str, current: &str, status: &str| {
        format!(
            "insert into financial_goals (id, user_id, name, target_amount, current_amount, status, created_at, updated_at) \
             values ({}, {}, 'Trip', {}, {}, {}, {}, {})",
            uuid_lit(db, uuid::Uuid::new_v4()),
            uuid_lit(db, user.0),
            money_lit(db, target),
            money_lit(db, current),
            status,
            now_lit(),
            now_lit()
        )
    };
    assert_eq!(exec(db, insert("100.00", "0.00", "'ACTIVE'")).await.unwrap(), 1);
    assert_check(exec(db, insert("100.00", "0.00", "'DONE'")).await, "ck_financial_goals_status");
    assert_check(exec(db, insert("0.00", "0.00", "'ACTIVE'")).await, "ck_financial_goals_target_amount");
    assert_check(exec(db, insert("-5.00", "0.00", "'ACTIVE'")).await, "ck_financial_goals_target_amount");
    assert_check(exec(db, insert("100.00", "-0.01", "'ACTIVE'")).await, "ck_financial_goals_current_amount");
});

db_test!(goal_defaults_are_zero_and_active, |db| {
    let user = user(db).await;
    let mut c = db.conn().await.unwrap();
    let goal = goals::create(
        c.c(),
        user,
        &goals::NewGoal {
            name: "Emergency fund".into(),
            target_amount: "1000.00".parse().unwrap(),
            deadline: None,
            category: None,
            tracking_start: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(goal.current_amount, Money::ZERO);
    assert_eq!(goal.status, magpie_domain::GoalStatus::Active);
});

db_test!(model_checks_reject_bad_rows, |db| {
    let insert = |model_type: &str, accuracy: &str, precision: &str, recall: &str| {
        format!(
            "insert into ml_models (id, model_type, user_id, version, accuracy, \"precision\", recall, trained_at, model_path) \
             values ({}, {}, null, '1', {}, {}, {}, {}, 'models/x.bin')",
            uuid_lit(db, uuid::Uuid::new_v4()),
            model_type,
            accuracy,
            precision,
            recall,
            now_lit()
        )
    };
    assert_eq!(exec(db, insert("'CATEGORIZATION'", "0.9", "0", "1")).await.unwrap(), 1);
    assert_eq!(exec(db, insert("'PREDICTION'", "null", "null", "null")).await.unwrap(), 1);
    assert_check(exec(db, insert("'REGRESSION'", "0.9", "0.9", "0.9")).await, "ck_ml_models_model_type");
    assert_check(exec(db, insert("'CATEGORIZATION'", "1.5", "0.9", "0.9")).await, "ck_ml_models_accuracy");
    assert_check(exec(db, insert("'CATEGORIZATION'", "-0.1", "0.9", "0.9")).await, "ck_ml_models_accuracy");
    assert_check(exec(db, insert("'CATEGORIZATION'", "0.9", "1.01", "0.9")).await, "ck_ml_models_precision");
    assert_check(exec(db, insert("'CATEGORIZATION'", "0.9", "0.9", "-1")).await, "ck_ml_models_recall");
    // is_active defaults to TRUE.
    assert_eq!(count(db, "select count(*) from ml_models where is_active = true".into()).await, 2);
});

db_test!(connection_checks_reject_bad_rows, |db| {
    let user = user(db).await;
    let insert = |status: &str| {
        format!(
            "insert into connections (id, user_id, institution_id, institution_name, access_token, status, created_at) \
             values ({}, {}, 'ins_1', 'First Bank', 'sealed', {}, {})",
            uuid_lit(db, uuid::Uuid::new_v4()),
            uuid_lit(db, user.0),
            status,
            now_lit()
        )
    };
    assert_eq!(exec(db, insert("'EXPIRED'")).await.unwrap(), 1);
    assert_check(exec(db, insert("'BROKEN'")).await, "ck_connections_status");
    assert_check(exec(db, insert("'active'")).await, "ck_connections_status");
});

db_test!(budget_checks_reject_bad_rows, |db| {
    let user = user(db).await;
    let insert = |start: &str, end: &str, alloc: &str| {
        format!(
            "insert into budgets (id, user_id, name, period_start, period_end, allocations, created_at, updated_at) \
             values ({}, {}, 'March', '{start}', '{end}', '{alloc}', {}, {})",
            uuid_lit(db, uuid::Uuid::new_v4()),
            uuid_lit(db, user.0),
            now_lit(),
            now_lit()
        )
    };
    assert_eq!(exec(db, insert("2026-03-01", "2026-03-31", r#"{"Groceries": "500.00"}"#)).await.unwrap(), 1);
    assert_check(exec(db, insert("2026-03-31", "2026-03-01", "{}")).await, "ck_budgets_period");
    assert_check(exec(db, insert("2026-03-01", "2026-03-31", "[1, 2]")).await, "ck_budgets_allocations");
    assert!(exec(db, insert("2026-03-01", "2026-03-31", "not json")).await.is_err());
});

db_test!(a_duplicate_email_is_a_unique_violation, |db| {
    let mut c = db.conn().await.unwrap();
    let new = magpie_db::users::NewUser {
        email: magpie_domain::Email::parse("same@example.com").unwrap(),
        password_hash: magpie_domain::PasswordHash::new("x"),
        first_name: None,
        last_name: None,
    };
    magpie_db::users::create(c.c(), &new).await.unwrap();
    let err = magpie_db::users::create(c.c(), &new).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err:?}");
});

db_test!(deleting_a_user_cascades_to_all_five_child_tables, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    for owner in [alice, bob] {
        let mut c = db.conn().await.unwrap();
        let conn = connections::create(
            c.c(),
            owner,
            &connections::NewConnection::new(
                ConnectionId::new(),
                magpie_domain::BankProvider::Plaid,
                "ins_1",
                "First Bank",
                SealedToken::new("v1:k1:sealed"),
            ),
        )
        .await
        .unwrap();
        transactions::create(
            c.c(),
            owner,
            &transactions::NewTransaction {
                amount: "12.30".parse().unwrap(),
                date: d("2026-01-15"),
                description: "Coffee".into(),
                category: Category::parse("Dining").unwrap(),
                kind: TransactionType::Expense,
                source: Source::Api,
                confidence_score: None,
                category_source: magpie_domain::CategorySource::User,
                connection_id: Some(conn.id),
            },
        )
        .await
        .unwrap();
        budgets::create(
            c.c(),
            owner,
            &budgets::NewBudget {
                name: "January".into(),
                period_start: d("2026-01-01"),
                period_end: d("2026-01-31"),
                allocations: Allocations::default(),
            },
        )
        .await
        .unwrap();
        goals::create(
            c.c(),
            owner,
            &goals::NewGoal {
                name: "Trip".into(),
                target_amount: "100.00".parse().unwrap(),
                deadline: None,
                category: None,
                tracking_start: None,
            },
        )
        .await
        .unwrap();
        models::create(
            c.c(),
            &models::NewModel {
                model_type: ModelType::Categorization,
                user_id: Some(owner),
                version: "1".into(),
                accuracy: Some(0.9),
                precision: Some(0.9),
                recall: Some(0.9),
                trained_at: Timestamp::now(),
                model_path: "models/u.bin".into(),
                is_active: true,
            },
        )
        .await
        .unwrap();
    }
    let tables = ["transactions", "budgets", "financial_goals", "ml_models", "connections"];
    let owned = |table: &str, u: magpie_domain::UserId| {
        format!("select count(*) from {table} where user_id = {}", uuid_lit(db, u.0))
    };
    for t in tables {
        assert_eq!(count(db, owned(t, alice)).await, 1, "{t} before");
    }
    let mut c = db.conn().await.unwrap();
    assert!(magpie_db::users::delete(c.c(), alice).await.unwrap());
    for t in tables {
        assert_eq!(count(db, owned(t, alice)).await, 0, "{t} rows of the deleted user remain");
        assert_eq!(count(db, owned(t, bob)).await, 1, "{t} rows of another user were deleted");
    }
});

db_test!(deleting_a_connection_detaches_its_transactions, |db| {
    let owner = user(db).await;
    let mut c = db.conn().await.unwrap();
    let conn = connections::create(
        c.c(),
        owner,
        &connections::NewConnection::new(
            ConnectionId::new(),
            magpie_domain::BankProvider::Plaid,
            "ins_1",
            "First Bank",
            SealedToken::new("v1:k1:sealed"),
        ),
    )
    .await
    .unwrap();
    let tx = transactions::create(
        c.c(),
        owner,
        &transactions::NewTransaction {
            amount: "5.00".parse().unwrap(),
            date: d("2026-01-15"),
            description: "Bus".into(),
            category: Category::parse("Transportation").unwrap(),
            kind: TransactionType::Expense,
            source: Source::Api,
            confidence_score: None,
            category_source: magpie_domain::CategorySource::User,
            connection_id: Some(conn.id),
        },
    )
    .await
    .unwrap();
    assert!(connections::delete(c.c(), owner, conn.id).await.unwrap());
    let after = transactions::get(c.c(), owner, tx.id).await.unwrap().expect("transaction kept");
    assert_eq!(after.connection_id, None);
    assert_eq!(after.amount, tx.amount);
});

db_test!(money_round_trips_exactly_and_sums_exactly, |db| {
    let owner = user(db).await;
    let mut c = db.conn().await.unwrap();
    let mut created = Vec::new();
    for (amount, n) in [("0.10", 10), ("0.20", 10), ("9999999999.99", 3), ("0.01", 1)] {
        for _ in 0..n {
            let t = transactions::create(
                c.c(),
                owner,
                &transactions::NewTransaction {
                    amount: amount.parse().unwrap(),
                    date: d("2026-02-01"),
                    description: "x".into(),
                    category: Category::parse("Other").unwrap(),
                    kind: TransactionType::Expense,
                    source: Source::Manual,
                    confidence_score: None,
                    category_source: magpie_domain::CategorySource::User,
                    connection_id: None,
                },
            )
            .await
            .unwrap();
            created.push(t);
        }
    }
    for t in &created {
        let back = transactions::get(c.c(), owner, t.id).await.unwrap().unwrap();
        assert_eq!(back.amount.to_string(), t.amount.to_string(), "scale and value kept");
    }
    // 10 x 0.10 + 10 x 0.20 + 3 x 9999999999.99 + 0.01 = 30000000002.98, beyond one column's range but
    // exact as a SUM on both engines.
    let sum: Money = on_conn!(c.c(), c => sqlx::query_scalar("select sum(amount) from transactions where user_id = $1")
        .bind(owner).fetch_one(&mut *c).await.unwrap());
    assert_eq!(sum.to_string(), "30000000002.98");
    let small: Money = on_conn!(c.c(), c => sqlx::query_scalar("select sum(amount) from transactions where user_id = $1 and amount < $2")
        .bind(owner).bind(Money::parse("1").unwrap()).fetch_one(&mut *c).await.unwrap());
    assert_eq!(small.to_string(), "3.01");
    let totals = transactions::totals(c.c(), owner, d("2026-02-01"), d("2026-02-01")).await.unwrap();
    assert_eq!(totals.expense, sum);
    assert_eq!(totals.income, Money::ZERO);
    // Ordering by amount is numeric on both engines (SQLite compares integer cents).
    let ordered: Vec<Money> = on_conn!(c.c(), c => sqlx::query_scalar("select distinct amount from transactions where user_id = $1 order by amount")
        .bind(owner).fetch_all(&mut *c).await.unwrap());
    let strings: Vec<String> = ordered.iter().map(|m| m.to_string()).collect();
    assert_eq!(strings, ["0.01", "0.10", "0.20", "9999999999.99"]);
});

db_test!(timestamps_round_trip_at_microsecond_precision, |db| {
    let mut c = db.conn().await.unwrap();
    let created = magpie_db::users::create(
        c.c(),
        &magpie_db::users::NewUser {
            email: magpie_domain::Email::parse("time@example.com").unwrap(),
            password_hash: magpie_domain::PasswordHash::new("x"),
            first_name: None,
            last_name: None,
        },
    )
    .await
    .unwrap();
    let read = magpie_db::users::get(c.c(), created.id).await.unwrap().unwrap();
    assert_eq!(read.created_at, created.created_at);
    assert_eq!(read.updated_at, created.updated_at);
});
