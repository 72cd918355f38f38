//! A process-wide log capture, so tests can prove that no secret is ever logged. Installed once per test
//! binary, at TRACE for our crates and DEBUG for sqlx (every statement), in JSON with span fields.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

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

fn captured() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED.get_or_init(|| {
        let cap = Captured::default();
        let writer = cap.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace,sqlx=debug,hyper=info,h2=info"))
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        cap
    })
}

/// Start capturing (idempotent).
pub fn install() {
    captured();
}

/// Everything logged so far in this process.
pub fn text() -> String {
    String::from_utf8_lossy(&captured().0.lock().unwrap()).into_owned()
}
