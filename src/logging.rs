//! Log set-up: Lambda's logging controls, with secrets kept out whatever they ask for
//! (docs/protocol.md 5.10).
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG` (which may also hold per-target and
//! span-scoped directives), then INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` switches to JSON lines.
//!
//! # What no setting can print
//!
//! A filter layer, [`Guard`], stands before the directives and removes call sites **by target**,
//! at registration (`Interest::never`) and again for each event, so that no directive brings
//! them back: not a crate-level `trace`, not one more specific than any cap
//! (`lambda_runtime::layers::api_response=trace`), not a span-scoped one (`[Lambda runtime
//! invoke]=trace`).
//!
//! - **Other crates' TRACE output.** The Lambda runtime logs every raw event, `RotationToken`
//!   included, at TRACE (`lambda_runtime::layers::api_response`: "raw JSON event received from
//!   Lambda"). The AWS SDK logs each request it transmits (a `PutSecretValue` body holds the new
//!   password) and each response it reads (a `GetSecretValue` answer holds the whole secret) at
//!   TRACE under `aws_smithy_runtime`. What keeps those bodies out of its lines today is an SDK
//!   detail (stalled-stream protection wraps request bodies; responses are redacted unless
//!   `LOG_SENSITIVE_BODIES=true`); removing the targets does not depend on either.
//! - **The database drivers' DEBUG and TRACE output**, which quotes statements (tokio-postgres
//!   logs `ALTER ROLE … PASSWORD <verifier>` through the `log` crate, should a bridge ever forward
//!   it).
//!
//! The crate's own events pass at every level: they carry identifiers, never values.
//!
//! The text format escapes control characters in every field and message, so that a value taken
//! from a secret (a user name with a newline) cannot start a log line of its own; JSON escapes
//! them by construction.
//!
//! One line of the runtime is dropped as noise: its warning that `AWS_LAMBDA_MAX_CONCURRENCY` is
//! set but its `concurrency-tokio` feature is not enabled, when the variable asks for at most one
//! invocation at a time (`cargo lambda watch` always sets it to 1). One at a time is exactly how
//! this function runs, so the warning would be false; a larger value keeps it, since the
//! function then runs more slowly than the platform expects.

use std::fmt::{self, Write as _};

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::debug_fn;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::env::Env;

/// The crate's own target (library and binary alike).
const OWN_TARGET: &str = "db_secret_rotator";

/// Targets whose DEBUG output quotes SQL statements: capped at INFO.
const STATEMENT_TARGETS: &[&str] = &[
    "tokio_postgres",
    "postgres_protocol",
    "mysql_async",
    "mysql_common",
];

/// The runtime's target for the concurrency warning, and the warning's opening words.
const CONCURRENCY_TARGET: &str = "lambda_runtime::runtime";
const CONCURRENCY_WARNING: &str = "AWS_LAMBDA_MAX_CONCURRENCY is set to";

/// Whether `target` is `crate_name` or one of its modules.
fn within(target: &str, crate_name: &str) -> bool {
    target
        .strip_prefix(crate_name)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// The most verbose level a target may log at, whatever the directives say.
fn ceiling(target: &str) -> Level {
    if within(target, OWN_TARGET) {
        Level::TRACE
    } else if STATEMENT_TARGETS.iter().any(|t| within(target, t)) {
        Level::INFO
    } else {
        Level::DEBUG
    }
}

/// The filter layer that removes what no setting may print (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Guard {
    /// `AWS_LAMBDA_MAX_CONCURRENCY` asks for at most one invocation at a time: the runtime's
    /// warning about it is dropped.
    sequential: bool,
}

impl Guard {
    /// The guard for `env`.
    pub fn new(env: &Env) -> Self {
        Guard {
            sequential: env
                .setting("AWS_LAMBDA_MAX_CONCURRENCY")
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|n| n <= 1),
        }
    }

    /// Whether a call site may ever log.
    pub fn admits(metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= ceiling(metadata.target())
    }
}

impl<S: Subscriber> Layer<S> for Guard {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::admits(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    // Also asked per event: a call site shared with another subscriber may be "sometimes".
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        Self::admits(metadata)
    }

    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        let metadata = event.metadata();
        if !self.sequential
            || *metadata.level() != Level::WARN
            || metadata.target() != CONCURRENCY_TARGET
        {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        !message.0.starts_with(CONCURRENCY_WARNING)
    }
}

/// An event's `message` field, as text.
#[derive(Default)]
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// The directives for a level or directive string (`AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`).
pub fn filter(spec: Option<&str>) -> EnvFilter {
    let spec = spec.map(str::trim).unwrap_or("");
    // Lambda's levels include FATAL, which tracing calls ERROR.
    let as_level = if spec.eq_ignore_ascii_case("fatal") {
        "error"
    } else {
        spec
    };
    let (level, directives) = match as_level.parse::<LevelFilter>() {
        Ok(level) if !spec.is_empty() => (level, String::new()),
        // Per-target directives (RUST_LOG style) on an INFO baseline; anything else reads as INFO.
        _ if spec.contains('=') => (LevelFilter::INFO, format!("info,{spec}")),
        _ => (LevelFilter::INFO, String::new()),
    };
    EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives)
}

/// `text` with control characters (and Unicode line and paragraph separators) escaped, as log
/// lines write it: for any text shown to an operator that comes from a secret or a database.
pub(crate) fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    // Writing into a String cannot fail.
    let _ = write_escaped(&mut out, text);
    std::borrow::Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Writes `text` with control characters (and Unicode line and paragraph separators) escaped.
fn write_escaped(writer: &mut impl fmt::Write, text: &str) -> fmt::Result {
    for c in text.chars() {
        match c {
            '\n' => writer.write_str("\\n")?,
            '\r' => writer.write_str("\\r")?,
            '\t' => writer.write_str("\\t")?,
            c if needs_escape(c) => {
                write!(writer, "\\u{{{:x}}}", u32::from(c))?;
            }
            c => writer.write_char(c)?,
        }
    }
    Ok(())
}

/// The subscriber `env` asks for, writing to `writer`: the guard, the directives, then the text
/// or JSON format.
pub fn subscriber<W>(env: &Env, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let spec = env
        .setting("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| env.setting("RUST_LOG"));
    let json = env
        .setting("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(spec))
        .with_target(false)
        .without_time()
        .with_writer(writer);
    if json {
        Box::new(builder.json().finish().with(Guard::new(env)))
    } else {
        let fields = debug_fn(|writer, field, value| {
            let text = format!("{value:?}");
            if field.name() != "message" {
                write!(writer, "{}=", field.name())?;
            }
            write_escaped(writer, &text)
        })
        .delimited(" ");
        Box::new(builder.fmt_fields(fields).finish().with(Guard::new(env)))
    }
}

/// Installs the global subscriber, writing to stdout (the function's log stream), as `env`'s
/// `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) and `AWS_LAMBDA_LOG_FORMAT` say.
pub fn init(env: &Env) {
    if tracing::subscriber::set_global_default(subscriber(env, std::io::stdout)).is_err() {
        tracing::warn!("a log subscriber was already installed");
    }
}

/// The unit tests' one log capture: every line of every test, at every level, as JSON, for the
/// checks that no secret value reaches a log.
#[cfg(test)]
pub(crate) mod capture {
    use std::sync::{Arc, Mutex, OnceLock};

    /// A shared buffer that a subscriber writes to.
    #[derive(Clone, Default)]
    pub(crate) struct Buffer(pub(crate) Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buffer {
        /// What was written.
        pub(crate) fn text(&self) -> String {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    static GLOBAL: OnceLock<Buffer> = OnceLock::new();

    /// Installs the global capturing subscriber once (per-thread subscribers race with
    /// tracing's callsite interest cache).
    pub(crate) fn install() {
        GLOBAL.get_or_init(|| {
            let buffer = Buffer::default();
            let writer = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .json()
                .with_writer(move || writer.clone())
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            buffer
        });
    }

    /// Every line captured so far.
    pub(crate) fn logs() -> String {
        install();
        GLOBAL.get().map(Buffer::text).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::capture::Buffer;
    use super::*;

    const SENTINEL: &str = "SENTINEL-rotation-token";

    /// Runs `emit` under the subscriber `env` asks for and returns what it printed.
    fn capture(env: &[(&str, &str)], emit: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = subscriber(&Env::from_pairs(env), move || writer.clone());
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
    }

    /// What the runtime, the SDK, a driver and this crate log during an invocation, with the
    /// runtime's invocation span around it.
    fn invocation() {
        let span = tracing::info_span!(target: "lambda_runtime::layers::trace", "Lambda runtime invoke", requestId = "req-1");
        let _entered = span.enter();
        tracing::trace!(target: "lambda_runtime::layers::api_response", body = %format!("{{\"RotationToken\":\"{SENTINEL}\"}}"), "raw JSON event received from Lambda");
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator", request = %format!("SdkBody {{ inner: Once(Some(b\"{{\\\"SecretString\\\":\\\"{SENTINEL}\\\"}}\")) }}"), "transmitting request");
        tracing::trace!(target: "aws_smithy_runtime::client::orchestrator::http", response = %SENTINEL, "read HTTP response body");
        tracing::debug!(target: "tokio_postgres::simple_query", "executing simple query: ALTER ROLE x PASSWORD '{SENTINEL}'");
        tracing::debug!(target: "lambda_runtime::runtime", "runtime debug line");
        tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "beginning attempt #1");
        tracing::trace!(target: "db_secret_rotator::handler", "handler trace line");
        tracing::info!(target: "db_secret_rotator::handler", "handler info line");
    }

    /// Every directive that asks for the raw event, from either variable, in either format.
    const DIRECTIVES: &[&str] = &[
        "lambda_runtime::layers::api_response=trace",
        "info,lambda_runtime::layers=trace",
        "[Lambda runtime invoke]=trace",
        "[Lambda runtime invoke{requestId=req-1}]=trace",
        "trace",
        "TRACE",
        "lambda_runtime=trace,trace",
        "lambda_runtime=trace",
        "aws_smithy_runtime=trace,tokio_postgres=trace",
        "off,lambda_runtime::layers::api_response[Lambda runtime invoke]=trace",
    ];

    #[test]
    fn no_directive_prints_an_event_a_body_or_a_statement() {
        for variable in ["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL"] {
            for format in ["JSON", "Text"] {
                for directive in DIRECTIVES {
                    let out = capture(
                        &[(variable, directive), ("AWS_LAMBDA_LOG_FORMAT", format)],
                        invocation,
                    );
                    assert!(
                        !out.contains(SENTINEL) && !out.contains("raw JSON event"),
                        "{variable}={directive} ({format}): {out}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_guard_leaves_everything_else_to_the_directives() {
        let out = capture(&[("AWS_LAMBDA_LOG_LEVEL", "TRACE")], invocation);
        for line in [
            "handler trace line",
            "handler info line",
            "runtime debug line",
            "beginning attempt #1",
        ] {
            assert!(out.contains(line), "{line}: {out}");
        }
        let out = capture(&[("RUST_LOG", "[Lambda runtime invoke]=trace")], invocation);
        assert!(out.contains("handler trace line"), "{out}");
        let out = capture(&[("RUST_LOG", "db_secret_rotator=trace")], invocation);
        assert!(
            out.contains("handler trace line") && !out.contains("runtime debug line"),
            "{out}"
        );
    }

    #[test]
    fn level_defaults_to_info() {
        for spec in [None, Some("verbose"), Some("")] {
            let env: Vec<(&str, &str)> = spec.map(|s| ("RUST_LOG", s)).into_iter().collect();
            let out = capture(&env, invocation);
            assert!(out.contains("handler info line"), "{spec:?}: {out}");
            assert!(
                !out.contains("handler trace line") && !out.contains("runtime debug"),
                "{spec:?}: {out}"
            );
        }
        let out = capture(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")], invocation);
        assert!(!out.contains("handler info line"), "FATAL reads as ERROR");
        // AWS_LAMBDA_LOG_LEVEL wins over RUST_LOG.
        let out = capture(
            &[("AWS_LAMBDA_LOG_LEVEL", "ERROR"), ("RUST_LOG", "trace")],
            invocation,
        );
        assert!(!out.contains("handler info line"), "{out}");
    }

    #[test]
    fn text_lines_escape_control_characters() {
        let forged = "app\nINFO forged line\r\u{1b}[31m\u{85}\u{2028}";
        let out = capture(&[], || {
            tracing::info!(target: "db_secret_rotator::handler", user = forged, error = %forged, "message {forged}");
            let span = tracing::info_span!(target: "db_secret_rotator::handler", "rotation", secret_id = %forged);
            span.in_scope(|| tracing::warn!(target: "db_secret_rotator::handler", "inside"));
        });
        assert_eq!(out.lines().count(), 2, "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out}");
        assert!(
            out.contains(r"app\nINFO forged line\r\u{1b}[31m\u{85}\u{2028}"),
            "{out}"
        );
        // JSON escapes by itself.
        let out = capture(&[("AWS_LAMBDA_LOG_FORMAT", "json")], || {
            tracing::info!(target: "db_secret_rotator::handler", error = %forged, "message {forged}");
        });
        assert_eq!(out.lines().count(), 1, "{out}");
    }

    #[test]
    fn the_concurrency_warning_is_dropped_when_one_at_a_time_is_asked_for() {
        let warn = || {
            tracing::warn!(target: "lambda_runtime::runtime", "AWS_LAMBDA_MAX_CONCURRENCY is set to '{}', but the concurrency-tokio feature is not enabled; running sequentially", 1);
            tracing::warn!(target: "lambda_runtime::runtime", "another runtime warning");
        };
        for value in ["1", " 1", "0"] {
            let out = capture(&[("AWS_LAMBDA_MAX_CONCURRENCY", value)], warn);
            assert!(!out.contains("concurrency-tokio"), "{value}: {out}");
            assert!(out.contains("another runtime warning"), "{value}: {out}");
        }
        for env in [&[("AWS_LAMBDA_MAX_CONCURRENCY", "4")][..], &[]] {
            let out = capture(env, warn);
            assert!(out.contains("concurrency-tokio"), "{env:?}: {out}");
        }
    }
}
