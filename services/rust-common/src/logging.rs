//! JSON-lines logging to stderr: `{"ts","level","service","msg",...fields}`, with the
//! fields of enclosing spans (e.g. `trace_id`, `task_id`) merged into each line.

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// Installs the global JSON logger. `level` is a level or an `EnvFilter` directive.
pub fn init(service: &'static str, level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level)?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines { service })
        .try_init()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Logs a service's effective config as one line, the config as a nested JSON object.
/// Secrets must be masked by the config's `Serialize` impl.
pub fn log_config<C: serde::Serialize>(config: &C) {
    match serde_json::to_string(config) {
        Ok(json) => tracing::info!(config = %json, "config"),
        Err(e) => tracing::warn!(error = %e, "config could not be serialized"),
    }
}

struct JsonLines {
    service: &'static str,
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        line.insert(
            "ts".into(),
            humantime::format_rfc3339_millis(SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        line.insert("service".into(), self.service.into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(map)) = serde_json::from_str(&fields.fields) {
                        line.extend(map);
                    }
                }
            }
        }
        event.record(&mut FieldVisitor(&mut line));
        line.insert("target".into(), event.metadata().target().into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct FieldVisitor<'a>(&'a mut Map<String, Value>);

impl FieldVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = match field.name() {
            "message" => "msg",
            other => other,
        };
        self.0.insert(name.to_string(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        // `log_config` passes the config as JSON text; embed it as an object.
        if field.name() == "config" {
            if let Ok(object @ Value::Object(_)) = serde_json::from_str(&text) {
                self.insert(field, object);
                return;
            }
        }
        self.insert(field, text.into());
    }
}
