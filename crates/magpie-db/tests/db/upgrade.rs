//! Upgrades from the previous release's schema, with data in it: every row and sum is kept.

use magpie_db::{Db, audit, auth, on_conn};

use crate::support::*;

async fn upgrade_from_the_previous_release_keeps_every_row(db: &Db) {
    db.migrate_to(9).await.unwrap();
    let user = user(db).await;
    {
        let mut c = db.conn().await.unwrap();
        for kind in ["sign_in", "sign_in_failed", "export"] {
            audit::record(c.c(), user, kind, Some("203.0.113.1"), Some("test"), &serde_json::json!({"n": 1}))
                .await
                .unwrap();
        }
        auth::get_or_create_secret(c.c(), "auth_signing_key", || "old-key-in-the-database-0123456789".into())
            .await
            .unwrap();
    }
    let events_before = count(db, "select count(*) from audit_events".into()).await;
    db.migrate().await.unwrap();
    assert_eq!(count(db, "select count(*) from audit_events".into()).await, events_before);
    let mut c = db.conn().await.unwrap();
    let kinds = audit::list(c.c(), user, 10).await.unwrap().into_iter().map(|e| e.kind).collect::<Vec<_>>();
    assert_eq!(kinds.len(), 3);
    assert!(kinds.contains(&"sign_in_failed".to_owned()));
    // The new kinds are accepted, the unknown still refused.
    audit::record(c.c(), user, "totp_enabled", None, None, &serde_json::json!({})).await.unwrap();
    assert!(audit::record(c.c(), user, "made_up", None, None, &serde_json::json!({})).await.is_err());
    let secrets: i64 = on_conn!(c.c(), c => sqlx::query_scalar("select count(*) from server_secrets where name = 'auth_signing_key'")
        .fetch_one(&mut *c).await.unwrap());
    assert_eq!(secrets, 0, "the stored signing key is dropped");
    // Deleting the user cascades into the new tables.
    magpie_db::security::create_requisition(c.c(), user, "req-1", "ref").await.unwrap();
    magpie_db::security::replace_recovery_codes(c.c(), user, &["a".repeat(64)]).await.unwrap();
    magpie_db::users::delete(c.c(), user).await.unwrap();
    drop(c);
    for table in ["bank_requisitions", "recovery_codes", "audit_events"] {
        assert_eq!(count(db, format!("select count(*) from {table}")).await, 0, "{table}");
    }
}

#[tokio::test]
async fn sqlite_upgrades_from_the_previous_release() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let db = Db::connect(&magpie_db::DbOptions::new(url)).await.unwrap();
    upgrade_from_the_previous_release_keeps_every_row(&db).await;
}

#[tokio::test]
async fn postgres_upgrades_from_the_previous_release() {
    let Some(t) = magpie_db::testing::TestDb::postgres_unmigrated().await else { return };
    upgrade_from_the_previous_release_keeps_every_row(&t.db).await;
}
