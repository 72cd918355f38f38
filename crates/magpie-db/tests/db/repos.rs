//! Repository functions: create/get/list/update/delete scoped by user on every table.

use magpie_db::{budgets, connections, db_test, goals, models, transactions, users};
use magpie_domain::{
    Allocations, Category, Confidence, ConnectionId, ConnectionStatus, Email, GoalStatus, ModelType, Money,
    SealedToken, Source, Timestamp, TransactionType,
};

use crate::support::*;

fn new_tx(amount: &str, date: &str, category: &str) -> transactions::NewTransaction {
    transactions::NewTransaction {
        amount: amount.parse().unwrap(),
        date: d(date),
        description: format!("{category} purchase"),
        category: Category::parse(category).unwrap(),
        kind: TransactionType::Expense,
        source: Source::Manual,
        confidence_score: None,
        category_source: magpie_domain::CategorySource::User,
        connection_id: None,
    }
}

db_test!(users_crud, |db| {
    let mut c = db.conn().await.unwrap();
    let u = users::create(
        c.c(),
        &users::NewUser {
            email: Email::parse("Ada@Example.com").unwrap(),
            password_hash: magpie_domain::PasswordHash::new("h1"),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(u.email.as_str(), "ada@example.com");
    let found = users::find_by_email(c.c(), &Email::parse("ADA@example.com").unwrap()).await.unwrap().unwrap();
    assert_eq!(found.id, u.id);
    let renamed = users::update_names(c.c(), u.id, Some("Augusta"), None).await.unwrap();
    assert_eq!(renamed.first_name.as_deref(), Some("Augusta"));
    assert_eq!(renamed.last_name, None);
    assert!(renamed.updated_at >= u.updated_at);
    let moved = users::update_email(c.c(), u.id, &Email::parse("augusta@example.com").unwrap()).await.unwrap();
    assert_eq!(moved.email.as_str(), "augusta@example.com");
    users::update_password_hash(c.c(), u.id, &magpie_domain::PasswordHash::new("h2")).await.unwrap();
    assert_eq!(users::get(c.c(), u.id).await.unwrap().unwrap().password_hash.expose(), "h2");
    assert_eq!(users::list(c.c()).await.unwrap().len(), 1);
    assert!(users::delete(c.c(), u.id).await.unwrap());
    assert!(users::get(c.c(), u.id).await.unwrap().is_none());
    assert!(!users::delete(c.c(), u.id).await.unwrap());
});

db_test!(transactions_crud_is_scoped_by_user_and_soft_deletes, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let mut c = db.conn().await.unwrap();
    let t = transactions::create(c.c(), alice, &new_tx("12.30", "2026-03-05", "Dining")).await.unwrap();
    transactions::create(c.c(), alice, &new_tx("40.00", "2026-03-20", "Groceries")).await.unwrap();
    transactions::create(c.c(), alice, &new_tx("7.00", "2026-04-01", "Dining")).await.unwrap();

    // Another user sees nothing and can change nothing.
    assert!(transactions::get(c.c(), bob, t.id).await.unwrap().is_none());
    assert!(
        transactions::update(
            c.c(),
            bob,
            t.id,
            &transactions::TransactionPatch { amount: Some(Money::ZERO), ..Default::default() }
        )
        .await
        .unwrap()
        .is_none()
    );
    assert!(!transactions::soft_delete(c.c(), bob, t.id).await.unwrap());
    assert!(transactions::list_by_date_range(c.c(), bob, d("2026-01-01"), d("2026-12-31")).await.unwrap().is_empty());

    let march = transactions::list_by_date_range(c.c(), alice, d("2026-03-01"), d("2026-03-31")).await.unwrap();
    assert_eq!(march.iter().map(|t| t.date.to_string()).collect::<Vec<_>>(), ["2026-03-20", "2026-03-05"]);
    let dining = transactions::list_by_category(c.c(), alice, &Category::parse("Dining").unwrap()).await.unwrap();
    assert_eq!(dining.len(), 2);

    let patched = transactions::update(
        c.c(),
        alice,
        t.id,
        &transactions::TransactionPatch {
            category: Some(Category::parse("Coffee").unwrap()),
            confidence_score: Some(Some(Confidence::from_hundredths(87).unwrap())),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(patched.category.as_str(), "Coffee");
    assert_eq!(patched.amount, t.amount);
    assert_eq!(patched.confidence_score.unwrap().hundredths(), 87);
    let cleared = transactions::update(
        c.c(),
        alice,
        t.id,
        &transactions::TransactionPatch { confidence_score: Some(None), ..Default::default() },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(cleared.confidence_score, None);

    assert!(transactions::soft_delete(c.c(), alice, t.id).await.unwrap());
    assert!(!transactions::soft_delete(c.c(), alice, t.id).await.unwrap(), "already deleted");
    assert!(transactions::get(c.c(), alice, t.id).await.unwrap().is_none());
    let kept = transactions::get_including_deleted(c.c(), alice, t.id).await.unwrap().unwrap();
    assert!(kept.deleted_at.is_some(), "kept for audit");
    assert_eq!(
        transactions::list_by_date_range(c.c(), alice, d("2026-03-01"), d("2026-03-31")).await.unwrap().len(),
        1
    );
    assert_eq!(
        transactions::totals(c.c(), alice, d("2026-03-01"), d("2026-03-31")).await.unwrap().expense.to_string(),
        "40.00"
    );
    assert!(!transactions::restore(c.c(), bob, t.id).await.unwrap());
    assert!(transactions::restore(c.c(), alice, t.id).await.unwrap());
    assert_eq!(
        transactions::totals(c.c(), alice, d("2026-03-01"), d("2026-03-31")).await.unwrap().expense.to_string(),
        "52.30"
    );
});

db_test!(a_transaction_cannot_reference_another_users_connection, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let mut c = db.conn().await.unwrap();
    let bobs = connections::create(
        c.c(),
        bob,
        &connections::NewConnection::new(
            ConnectionId::new(),
            magpie_domain::BankProvider::Plaid,
            "ins",
            "Bank",
            SealedToken::new("sealed"),
        ),
    )
    .await
    .unwrap();
    let mut new = new_tx("1.00", "2026-01-01", "Other");
    new.connection_id = Some(bobs.id);
    assert!(matches!(transactions::create(c.c(), alice, &new).await, Err(magpie_db::DbError::NotFound)));
});

db_test!(budgets_crud_and_current_period, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let mut c = db.conn().await.unwrap();
    let alloc: Allocations = serde_json::from_str(r#"{"Groceries": "500.00", "Dining": 200}"#).unwrap();
    let b = budgets::create(
        c.c(),
        alice,
        &budgets::NewBudget {
            name: "March".into(),
            period_start: d("2026-03-01"),
            period_end: d("2026-03-31"),
            allocations: alloc.clone(),
        },
    )
    .await
    .unwrap();
    let read = budgets::get(c.c(), alice, b.id).await.unwrap().unwrap();
    assert_eq!(read.allocations, alloc);
    assert!(budgets::get(c.c(), bob, b.id).await.unwrap().is_none());
    assert_eq!(budgets::current(c.c(), alice, d("2026-03-15")).await.unwrap().len(), 1);
    assert!(budgets::current(c.c(), alice, d("2026-04-01")).await.unwrap().is_empty());
    assert!(budgets::current(c.c(), bob, d("2026-03-15")).await.unwrap().is_empty());
    let updated = budgets::update(
        c.c(),
        alice,
        b.id,
        &budgets::NewBudget {
            name: "March v2".into(),
            period_start: d("2026-03-01"),
            period_end: d("2026-04-30"),
            allocations: Allocations::default(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(updated.name, "March v2");
    assert!(
        budgets::update(
            c.c(),
            bob,
            b.id,
            &budgets::NewBudget {
                name: "x".into(),
                period_start: d("2026-03-01"),
                period_end: d("2026-03-02"),
                allocations: Allocations::default(),
            }
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(budgets::list(c.c(), alice).await.unwrap().len(), 1);
    assert!(!budgets::delete(c.c(), bob, b.id).await.unwrap());
    assert!(budgets::delete(c.c(), alice, b.id).await.unwrap());
});

db_test!(goals_crud_and_active_filter, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let mut c = db.conn().await.unwrap();
    let g = goals::create(
        c.c(),
        alice,
        &goals::NewGoal {
            name: "Trip".into(),
            target_amount: "1500.00".parse().unwrap(),
            deadline: Some(d("2026-12-01")),
            category: Some(Category::parse("Travel").unwrap()),
            tracking_start: None,
        },
    )
    .await
    .unwrap();
    assert!(goals::get(c.c(), bob, g.id).await.unwrap().is_none());
    let p = goals::update(
        c.c(),
        alice,
        g.id,
        &goals::GoalPatch {
            current_amount: Some("1500.00".parse().unwrap()),
            status: Some(GoalStatus::Achieved),
            deadline: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(p.status, GoalStatus::Achieved);
    assert_eq!(p.deadline, None);
    assert_eq!(p.category, g.category, "untouched");
    assert!(goals::list(c.c(), alice, Some(GoalStatus::Active)).await.unwrap().is_empty());
    assert_eq!(goals::list(c.c(), alice, Some(GoalStatus::Achieved)).await.unwrap().len(), 1);
    assert_eq!(goals::list(c.c(), alice, None).await.unwrap().len(), 1);
    assert!(goals::update(c.c(), bob, g.id, &goals::GoalPatch::default()).await.unwrap().is_none());
    assert!(!goals::delete(c.c(), bob, g.id).await.unwrap());
    assert!(goals::delete(c.c(), alice, g.id).await.unwrap());
});

db_test!(models_registry_visibility_and_atomic_activation, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let new = |user, version: &str, active| models::NewModel {
        model_type: ModelType::Categorization,
        user_id: user,
        version: version.into(),
        accuracy: Some(0.91),
        precision: Some(0.9),
        recall: Some(0.89),
        trained_at: Timestamp::now(),
        model_path: format!("models/{version}.bin"),
        is_active: active,
    };
    let mut c = db.conn().await.unwrap();
    let global = models::create(c.c(), &new(None, "g1", true)).await.unwrap();
    let a1 = models::create(c.c(), &new(Some(alice), "a1", true)).await.unwrap();
    let a2 = models::create(c.c(), &new(Some(alice), "a2", false)).await.unwrap();
    let b1 = models::create(c.c(), &new(Some(bob), "b1", true)).await.unwrap();

    assert!(models::get_visible(c.c(), alice, global.id).await.unwrap().is_some(), "global models are visible");
    assert!(models::get_visible(c.c(), alice, b1.id).await.unwrap().is_none(), "another user's model is not");
    assert!(models::get_own(c.c(), alice, global.id).await.unwrap().is_none());
    let visible = models::list_visible(c.c(), alice, None).await.unwrap();
    assert_eq!(visible.len(), 3);
    assert_eq!(models::find_active(c.c(), Some(alice), ModelType::Categorization).await.unwrap().unwrap().id, a1.id);
    assert_eq!(models::find_active(c.c(), None, ModelType::Categorization).await.unwrap().unwrap().id, global.id);
    assert!(models::find_active(c.c(), Some(alice), ModelType::Prediction).await.unwrap().is_none());
    drop(c);

    let mut tx = db.begin().await.unwrap();
    assert!(models::activate(tx.c(), Some(alice), a2.id).await.unwrap());
    assert!(!models::activate(tx.c(), Some(alice), b1.id).await.unwrap(), "cannot activate another user's model");
    tx.commit().await.unwrap();
    let mut c = db.conn().await.unwrap();
    assert_eq!(models::find_active(c.c(), Some(alice), ModelType::Categorization).await.unwrap().unwrap().id, a2.id);
    assert!(!models::get_own(c.c(), alice, a1.id).await.unwrap().unwrap().is_active);
    assert!(models::get_own(c.c(), bob, b1.id).await.unwrap().unwrap().is_active, "bob's model untouched");
    assert!(models::find_active(c.c(), None, ModelType::Categorization).await.unwrap().is_some(), "global untouched");
    assert!(!models::delete_own(c.c(), bob, a1.id).await.unwrap());
    assert!(models::delete_own(c.c(), alice, a1.id).await.unwrap());
});

db_test!(connections_crud_status_and_token, |db| {
    let alice = user(db).await;
    let bob = user(db).await;
    let mut c = db.conn().await.unwrap();
    let conn = connections::create(
        c.c(),
        alice,
        &connections::NewConnection::new(
            ConnectionId::new(),
            magpie_domain::BankProvider::Plaid,
            "ins_109508",
            "First Platypus Bank",
            SealedToken::new("v1:k1:abc"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(conn.status, ConnectionStatus::Active);
    assert!(connections::get(c.c(), bob, conn.id).await.unwrap().is_none());
    assert!(connections::update_status(c.c(), bob, conn.id, ConnectionStatus::Error, None).await.unwrap().is_none());
    let synced = Timestamp::now();
    let u = connections::update_status(c.c(), alice, conn.id, ConnectionStatus::Active, Some(synced))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.last_sync, Some(synced));
    let e = connections::update_status(c.c(), alice, conn.id, ConnectionStatus::Expired, None).await.unwrap().unwrap();
    assert_eq!(e.last_sync, Some(synced), "last_sync kept when not given");
    assert_eq!(connections::list(c.c(), alice, Some(ConnectionStatus::Expired)).await.unwrap().len(), 1);
    assert!(connections::list(c.c(), alice, Some(ConnectionStatus::Active)).await.unwrap().is_empty());
    assert_eq!(connections::list_by_institution(c.c(), alice, "ins_109508").await.unwrap().len(), 1);
    assert!(!connections::update_token(c.c(), bob, conn.id, &SealedToken::new("evil")).await.unwrap());
    assert!(connections::update_token(c.c(), alice, conn.id, &SealedToken::new("v1:k2:def")).await.unwrap());
    assert_eq!(connections::get(c.c(), alice, conn.id).await.unwrap().unwrap().access_token.expose(), "v1:k2:def");
    assert!(!connections::delete(c.c(), bob, conn.id).await.unwrap());
    assert!(connections::delete(c.c(), alice, conn.id).await.unwrap());
});

db_test!(a_rolled_back_transaction_leaves_nothing, |db| {
    let alice = user(db).await;
    let mut tx = db.begin().await.unwrap();
    transactions::create(tx.c(), alice, &new_tx("1.00", "2026-01-01", "Other")).await.unwrap();
    transactions::create(tx.c(), alice, &new_tx("2.00", "2026-01-01", "Other")).await.unwrap();
    drop(tx);
    let mut c = db.conn().await.unwrap();
    assert!(transactions::list_by_date_range(c.c(), alice, d("2026-01-01"), d("2026-01-01")).await.unwrap().is_empty());
});

db_test!(existing_keys_finds_keys_by_window_and_by_probe_including_deleted_rows_of_the_user_only, |db| {
    use magpie_db::imports::{self, ImportedRow, KeyLookup};
    let alice = user(db).await;
    let bob = user(db).await;
    let row = |date: &str, fp: &str, ext: Option<&str>| ImportedRow {
        tx: transactions::NewTransaction { source: Source::FileImport, ..new_tx("9.99", date, "Dining") },
        external_key: ext.map(str::to_owned),
        fingerprint: fp.to_owned(),
    };
    let mut tx = db.begin().await.unwrap();
    let rows = [
        row("2026-01-05", "f1:a", Some("x1:a")),
        row("2026-01-20", "f1:b", None),
        row("2026-06-01", "f1:c", Some("x1:c")),
    ];
    assert_eq!(imports::insert_imported(tx.c(), alice, None, &rows).await.unwrap(), 3);
    imports::insert_imported(tx.c(), bob, None, &[row("2026-01-06", "f1:bob", Some("x1:bob"))]).await.unwrap();
    tx.commit().await.unwrap();
    // A deleted row still counts.
    exec(db, "update transactions set deleted_at = created_at where fingerprint = 'f1:b'".into()).await.unwrap();

    let all = ["f1:a", "f1:b", "f1:c", "f1:new", "f1:bob"];
    let mut c = db.conn().await.unwrap();
    for dates in [
        // A short range: read the range and compare.
        Some((d("2026-01-01"), d("2026-01-31"))),
        // A wide one (an unsorted file): probe each key.
        Some((d("2026-01-01"), d("2026-12-31"))),
        None,
    ] {
        let lookup =
            KeyLookup { external: vec!["x1:a", "x1:c", "x1:none", "x1:bob"], fingerprints: all.to_vec(), dates };
        let mut found: Vec<String> = imports::existing_keys(c.c(), alice, &lookup).await.unwrap().into_iter().collect();
        found.sort();
        // The short window only sees January (f1:c is in June; a fingerprint includes its date, so a row
        // of another month cannot share it).
        let expected: &[&str] = if dates == Some((d("2026-01-01"), d("2026-01-31"))) {
            &["f1:a", "f1:b", "x1:a", "x1:c"]
        } else {
            &["f1:a", "f1:b", "f1:c", "x1:a", "x1:c"]
        };
        assert_eq!(found, expected, "dates {dates:?}");
    }
    let empty = imports::existing_keys(c.c(), alice, &KeyLookup::default()).await.unwrap();
    assert!(empty.is_empty());
});
