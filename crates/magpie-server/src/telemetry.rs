//! Logging and metrics set-up.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The tracing filter for a configured level. sqlx logs every statement at DEBUG and slow ones at WARN;
/// unless the operator says otherwise about sqlx, only the slow ones are wanted.
pub fn filter_directives(level: &str) -> String {
    if level.contains("sqlx") { level.to_owned() } else { format!("{level},sqlx::query=warn") }
}

/// Install the global tracing subscriber (stderr, pretty or JSON). JSON lines carry the fields of the
/// current span, so every line of a request has its `request_id`.
pub fn init_tracing(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter_directives(level))
        .map_err(|e| anyhow::anyhow!("invalid log_level '{level}': {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()?,
    }
    Ok(())
}

/// Histogram buckets (seconds) for request and database timings: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder, installed on first use. Metrics are process-global (one recorder
/// per process), so every app in a process, e.g. in tests, shares it.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .expect("non-empty buckets");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be incomplete");
            }
            handle
        })
        .clone()
}

/// Keep the recorder's memory bounded between scrapes.
pub fn spawn_metrics_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}
