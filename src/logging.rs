//! Log set-up: Lambda's advanced logging controls, with secrets kept out at every level.
//!
//! The level comes from `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG` (which may also hold per-target
//! directives), then INFO; `AWS_LAMBDA_LOG_FORMAT=JSON` switches to JSON lines. Whatever is asked
//! for, the Lambda runtime is capped at DEBUG, because at TRACE it logs each raw event, and the
//! event's `RotationToken` must never be logged.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::env::Env;

/// Targets capped below TRACE (at the chosen level, or DEBUG when TRACE was asked for): the
/// runtime logs the raw invocation payload, with its `RotationToken`, at TRACE.
const CAPPED: &[&str] = &["lambda_runtime", "lambda_runtime_api_client"];

/// The filter for a level or directive string (`AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`).
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
    let mut filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .parse_lossy(directives);
    let cap = level.min(LevelFilter::DEBUG);
    for target in CAPPED {
        if let Ok(directive) = format!("{target}={cap}").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

/// Installs the global subscriber, writing to stdout (the function's log stream), as `env`'s
/// `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`) and `AWS_LAMBDA_LOG_FORMAT` say.
pub fn init(env: &Env) {
    let spec = env
        .setting("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|| env.setting("RUST_LOG"));
    let json = env
        .setting("AWS_LAMBDA_LOG_FORMAT")
        .is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(spec))
        .with_target(false)
        .without_time();
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn emit(spec: Option<&str>) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter(spec))
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "{\"RotationToken\":\"rt\"}", "raw JSON event received from Lambda");
            tracing::debug!(target: "lambda_runtime::runtime", "runtime debug line");
            tracing::trace!(target: "db_secret_rotator::handler", "handler trace line");
            tracing::info!(target: "db_secret_rotator::handler", "handler info line");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn raw_events_are_never_logged() {
        for spec in [
            Some("TRACE"),
            Some("trace"),
            Some("lambda_runtime=trace,trace"),
            Some("lambda_runtime=trace"),
        ] {
            let out = emit(spec);
            assert!(!out.contains("RotationToken"), "{spec:?}: {out}");
        }
        let out = emit(Some("TRACE"));
        assert!(
            out.contains("handler trace line") && out.contains("runtime debug line"),
            "{out}"
        );
    }

    #[test]
    fn level_defaults_to_info() {
        for spec in [None, Some("verbose"), Some("")] {
            let out = emit(spec);
            assert!(out.contains("handler info line"), "{spec:?}: {out}");
            assert!(
                !out.contains("handler trace line") && !out.contains("runtime debug"),
                "{spec:?}: {out}"
            );
        }
        assert!(
            !emit(Some("FATAL")).contains("handler info line"),
            "FATAL reads as ERROR"
        );
        let out = emit(Some("db_secret_rotator=trace"));
        assert!(out.contains("handler trace line"), "{out}");
    }
}
