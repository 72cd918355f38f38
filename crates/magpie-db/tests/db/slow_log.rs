//! The seed's slow-query log: a statement slower than the threshold is logged at WARN with its SQL.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use magpie_db::{Db, DbOptions, on_conn};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A process-wide subscriber capturing WARN and above from sqlx (SQLite runs statements on its own
/// worker thread, so a thread-local subscriber would miss them).
fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let cap = Captured::default();
        let writer = cap.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("sqlx::query=warn"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber in this binary");
        cap
    })
}

async fn run_slow_statement(test_db: &magpie_db::testing::TestDb, marker: &str) {
    let cap = captured();
    let opts = DbOptions { slow_statement_threshold: Duration::from_millis(30), ..test_db.options() };
    let db = Db::connect(&opts).await.unwrap();
    let mut c = db.conn().await.unwrap();
    // A fast statement must not be logged; a recursive count to a few million takes well over 30 ms.
    let fast = format!("select 1 as fast_{marker}");
    let slow = format!(
        "with recursive r(n) as (select 1 union all select n + 1 from r where n < 3000000) \
         select count(*) as slow_{marker} from r"
    );
    on_conn!(c.c(), c => {
        sqlx::query(sqlx::AssertSqlSafe(fast)).execute(&mut *c).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(slow)).execute(&mut *c).await.unwrap();
    });
    drop(c);
    db.close().await;
    let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains(&format!("slow_{marker}")));
    let line = line.unwrap_or_else(|| panic!("slow statement not logged; captured:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("slow statement"), "{line}");
    assert!(!text.contains(&format!("fast_{marker}")), "a fast statement was logged as slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_logged_at_warn_with_its_sql_on_sqlite() {
    let t = magpie_db::testing::TestDb::sqlite().await;
    run_slow_statement(&t, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_logged_at_warn_with_its_sql_on_postgres() {
    let Some(t) = magpie_db::testing::TestDb::postgres().await else { return };
    run_slow_statement(&t, "postgres").await;
}
