//! Logging and metrics set-up.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Value, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
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
                    .with_writer(std::io::stderr)
                    .map_event_format(ShortFields),
            )
            .try_init()?,
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr)
                    .map_event_format(ShortFields),
            )
            .try_init()?,
    }
    Ok(())
}

/// The longest field value a log line carries. A slow multi-row INSERT's statement (logged by the
/// slow-query log) is tens of kilobytes of placeholders; its first few hundred characters identify it.
pub const MAX_FIELD_CHARS: usize = 500;

/// An event formatter that shortens over-long string fields before the inner formatter (text or JSON)
/// writes the event. Events without long fields pass through untouched, at the cost of one visit.
struct ShortFields<F>(F);

impl<S, N, F> FormatEvent<S, N> for ShortFields<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if !fields.shortened {
            return self.0.format_event(ctx, writer, event);
        }
        // A value set must be a fixed-size array; events have few fields.
        macro_rules! rebuilt {
            ($($n:literal)*) => {
                match fields.values.len() {
                    $($n => self.format_rebuilt::<S, N, $n>(ctx, writer, event, &fields.values),)*
                    _ => self.0.format_event(ctx, writer, event),
                }
            };
        }
        rebuilt!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
    }
}

impl<F> ShortFields<F> {
    fn format_rebuilt<S, N, const LEN: usize>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        writer: Writer<'_>,
        event: &Event<'_>,
        values: &[(Field, FieldValue)],
    ) -> std::fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        let pairs: Vec<(&Field, Option<&dyn Value>)> = values.iter().map(|(f, v)| (f, Some(v.as_value()))).collect();
        let Ok(array) = <[(&Field, Option<&dyn Value>); LEN]>::try_from(pairs) else {
            return self.0.format_event(ctx, writer, event);
        };
        let value_set = event.metadata().fields().value_set(&array);
        let shortened = if event.is_contextual() {
            Event::new(event.metadata(), &value_set)
        } else {
            Event::new_child_of(event.parent().cloned(), event.metadata(), &value_set)
        };
        self.0.format_event(ctx, writer, &shortened)
    }
}

/// One recorded field value, owned.
enum FieldValue {
    Str(String),
    Display(tracing::field::DisplayValue<String>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

impl FieldValue {
    fn as_value(&self) -> &dyn Value {
        match self {
            FieldValue::Str(s) => s,
            FieldValue::Display(d) => d,
            FieldValue::I64(v) => v,
            FieldValue::U64(v) => v,
            FieldValue::F64(v) => v,
            FieldValue::Bool(v) => v,
        }
    }
}

#[derive(Default)]
struct Fields {
    values: Vec<(Field, FieldValue)>,
    shortened: bool,
}

impl Fields {
    fn shorten(&mut self, text: &str) -> Option<String> {
        if text.len() <= MAX_FIELD_CHARS {
            return None;
        }
        self.shortened = true;
        let mut end = MAX_FIELD_CHARS;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Some(format!("{}… ({} bytes in all)", &text[..end], text.len()))
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let value = self.shorten(value).unwrap_or_else(|| value.to_owned());
        self.values.push((field.clone(), FieldValue::Str(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        let text = self.shorten(&text).unwrap_or(text);
        self.values.push((field.clone(), FieldValue::Display(tracing::field::display(text))));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.clone(), FieldValue::I64(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values.push((field.clone(), FieldValue::U64(value)));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.clone(), FieldValue::F64(value)));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.clone(), FieldValue::Bool(value)));
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool, emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = {
            let buffer = buffer.clone();
            move || buffer.clone()
        };
        let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false);
        if json {
            let subscriber = tracing_subscriber::registry().with(layer.json().map_event_format(ShortFields));
            tracing::subscriber::with_default(subscriber, emit);
        } else {
            let subscriber = tracing_subscriber::registry().with(layer.map_event_format(ShortFields));
            tracing::subscriber::with_default(subscriber, emit);
        }
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn long_fields_are_shortened_in_text_and_json_and_the_rest_is_kept() {
        let statement = format!("insert into t values {}", "(?, ?), ".repeat(5000));
        for json in [false, true] {
            let line = logged(json, || {
                let span = tracing::info_span!("request", request_id = "r-1");
                let _entered = span.enter();
                tracing::warn!(db.statement = statement.as_str(), rows_affected = 1000u64, "slow statement");
            });
            assert!(line.len() < MAX_FIELD_CHARS + 400, "{} bytes: {line}", line.len());
            assert!(line.contains("insert into t values (?, ?)"), "{line}");
            assert!(line.contains(&format!("({} bytes in all)", statement.len())), "{line}");
            assert!(line.contains("1000") && line.contains("slow statement"), "{line}");
            assert!(line.contains("r-1"), "the span's fields stay: {line}");
        }
        let short = logged(true, || tracing::info!(path = "/healthz", "request"));
        assert!(short.contains(r#""path":"/healthz""#), "{short}");
    }
}
