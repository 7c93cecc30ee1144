//! The glue every database driver needs, written once: how a connection is secured (the secret's
//! `ssl` key and `TLS_MODE`, docs/protocol.md 5.4), the plaintext retry of `TLS_MODE=prefer`, calls
//! bounded in time (5.5), the text kept from a driver error (5.10), and how long a close may take.

use std::future::Future;
use std::time::Duration;

use crate::config::{Config, TlsMode};
use crate::credentials::{Login, SslSetting};
use crate::deadline::{AttemptLimit, StepContext};
use crate::engine::Engine;
use crate::error::{Error, Shortfall};

/// How long closing a session waits for the server to acknowledge: a fraction of the deadline's
/// safety margin, which a statement timeout leaves for closing and reporting.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

/// What a read-only audit of the alternate account is called in errors.
pub(crate) const AUDITING: &str = "comparing the user and its clone (read-only)";

/// What a statement that timed out may have done, for its error.
pub(crate) const MAY_HAVE_APPLIED: &str = "the change may or may not have been applied";

/// How every engine's connections are secured: `TLS_MODE`, and whether a password may cross a
/// connection without verified TLS in a readable or replayable form (`ALLOW_CLEARTEXT_PASSWORDS`,
/// docs/protocol.md 5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transport {
    pub(crate) mode: TlsMode,
    pub(crate) cleartext: bool,
}

impl Transport {
    /// The configuration's transport settings.
    pub(crate) fn of(config: &Config) -> Self {
        Transport {
            mode: config.tls_mode,
            cleartext: config.allow_cleartext_passwords,
        }
    }
}

/// Why a password cannot be sent on a connection without verified TLS, for errors.
pub(crate) const CLEARTEXT_REFUSED: &str = "the password would cross a connection without \
    verified TLS in a form anyone on the network path can read or replay; use TLS (`ssl: true`), \
    or set ALLOW_CLEARTEXT_PASSWORDS=on to accept that risk";

/// How one connection is secured, resolved from the secret's `ssl` key and `TLS_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsChoice {
    /// Verified TLS, no fallback.
    Require,
    /// Plaintext.
    Disable,
    /// Verified TLS, then plaintext with a warning when TLS cannot be set up.
    Prefer,
}

impl TlsChoice {
    /// The choice for a secret's `ssl` setting under `mode`.
    pub(crate) fn resolve(ssl: SslSetting, mode: TlsMode) -> Self {
        match (ssl, mode) {
            (SslSetting::Require, _) => TlsChoice::Require,
            (SslSetting::Disable, _) => TlsChoice::Disable,
            (SslSetting::Unset | SslSetting::Unrecognised, TlsMode::VerifyFull) => {
                TlsChoice::Require
            }
            (SslSetting::Unset | SslSetting::Unrecognised, TlsMode::Prefer) => TlsChoice::Prefer,
        }
    }
}

/// Why one connection attempt failed, and whether `TLS_MODE=prefer` may retry it in plaintext.
pub(crate) struct Failure {
    pub(crate) error: Error,
    /// The server never got to authentication (no TLS, untrusted certificate, transport): a
    /// plaintext retry is allowed under `prefer`. Authentication failures and timeouts never retry.
    pub(crate) before_auth: bool,
}

impl Failure {
    /// A failed login on `engine`, keeping `code` (never the server's message).
    pub(crate) fn login(engine: Engine, code: String, before_auth: bool) -> Self {
        Failure {
            error: database_error(engine, "logging in", code),
            before_auth,
        }
    }

    /// The server refused the credential, keeping its code: another version may be tried.
    pub(crate) fn refused(engine: Engine, code: String) -> Self {
        Failure {
            error: Error::Refused { engine, code },
            before_auth: false,
        }
    }

    /// The server did not answer within the attempt's `limit` (`phase`: what was waited for):
    /// never a refusal, never retried in plaintext. `DatabaseTimeout` when the server had its
    /// whole connect timeout; `DeadlineExceeded` when the invocation's deadline cut it short.
    pub(crate) fn unanswered(engine: Engine, phase: &str, limit: &AttemptLimit) -> Self {
        Failure {
            error: limit.unanswered(engine, phase),
            before_auth: false,
        }
    }
}

/// The limit of one connection attempt; running out of time is never retried.
pub(crate) fn attempt_timeout(
    ctx: &StepContext<'_>,
    attempt: &str,
) -> Result<AttemptLimit, Failure> {
    ctx.connect_limit(attempt).map_err(|error| Failure {
        error,
        before_auth: false,
    })
}

/// Whether a login may make a verified-TLS attempt: its connector (and the trust roots under
/// it, loaded on first use) is made before the first attempt, so that loading them never eats
/// into an attempt's timeout.
pub(crate) fn may_use_tls(mode: TlsMode, creds: &Login) -> bool {
    TlsChoice::resolve(creds.ssl(), mode) != TlsChoice::Disable
}

/// Connects as the TLS choice for `creds` says: `attempt(true)` is a verified-TLS attempt,
/// `attempt(false)` a plaintext one. Under `prefer`, a TLS attempt that failed before
/// authentication is retried in plaintext, with a warning naming the secret and host.
pub(crate) async fn connect_per_tls_choice<T, Fut>(
    mode: TlsMode,
    creds: &Login,
    ctx: &StepContext<'_>,
    attempt: impl Fn(bool) -> Fut,
) -> Result<T, Error>
where
    Fut: Future<Output = Result<T, Failure>>,
{
    match TlsChoice::resolve(creds.ssl(), mode) {
        TlsChoice::Require => attempt(true).await,
        TlsChoice::Disable => attempt(false).await,
        TlsChoice::Prefer => match attempt(true).await {
            Err(Failure {
                error,
                before_auth: true,
            }) => {
                tracing::warn!(
                    secret_id = ctx.secret_id,
                    host = creds.host(),
                    error = %error,
                    "TLS connection failed; retrying in plaintext because TLS_MODE=prefer"
                );
                attempt(false).await
            }
            other => other,
        },
    }
    .map_err(|f| f.error)
}

/// Runs `work` for at most `timeout`. When the time runs out, the error is `timed_out` of a text
/// saying so (`timed out after 1.5s`), to which the caller adds what may have happened.
pub(crate) async fn bounded<T, E>(
    timeout: Duration,
    work: impl Future<Output = Result<T, E>>,
    timed_out: impl FnOnce(String) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(format!("timed out after {timeout:?}"))),
    }
}

/// An [`Error::Database`]: `code` is an SQLSTATE, an error number or a transport description,
/// never the server's message (which may echo the statement, and a password with it).
pub(crate) fn database_error(
    engine: Engine,
    action: &'static str,
    code: impl Into<String>,
) -> Error {
    Error::Database {
        engine,
        action,
        code: code.into(),
        hint: None,
    }
}

/// [`database_error`] with what the operator can do about it.
/// The error of a change the master may not make, found before it starts: what it lacks and
/// the grants that give it (`shortfalls`, from its engine's read-only check). Nothing was changed.
pub(crate) fn master_lacks(
    engine: Engine,
    action: &'static str,
    master: &str,
    shortfalls: &[Shortfall],
) -> Error {
    let missing: Vec<&str> = shortfalls.iter().map(|s| s.missing.as_str()).collect();
    let hints: Vec<&str> = shortfalls
        .iter()
        .filter_map(|s| s.hint.as_deref())
        .collect();
    database_error_hinted(
        engine,
        action,
        format!(
            "the master {master} lacks {}; nothing was changed",
            missing.join(", ")
        ),
        hints.join("; "),
    )
}

pub(crate) fn database_error_hinted(
    engine: Engine,
    action: &'static str,
    code: impl Into<String>,
    hint: impl Into<String>,
) -> Error {
    Error::Database {
        engine,
        action,
        code: code.into(),
        hint: Some(hint.into()),
    }
}

/// A driver error's description with its causes (`error performing TLS handshake: invalid peer
/// certificate: UnknownIssuer`), each cause added unless the text already ends with it. For
/// transport, TLS and protocol failures only: a server error's message may quote the statement.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_choice() {
        use SslSetting::*;
        for (ssl, mode, expected) in [
            (Require, TlsMode::Prefer, TlsChoice::Require),
            (Disable, TlsMode::VerifyFull, TlsChoice::Disable),
            (Unset, TlsMode::VerifyFull, TlsChoice::Require),
            (Unrecognised, TlsMode::Prefer, TlsChoice::Prefer),
        ] {
            assert_eq!(TlsChoice::resolve(ssl, mode), expected, "{ssl:?} {mode:?}");
        }
    }

    #[test]
    fn error_chains_skip_repeated_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error performing TLS handshake")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert_eq!(
            error_chain(&e),
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
        );
    }

    #[tokio::test]
    async fn bounded_calls_time_out_into_the_callers_error() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<(), String>(())
        };
        let err = bounded(Duration::from_millis(10), slow, |t| {
            format!("{t}; {MAY_HAVE_APPLIED}")
        })
        .await
        .unwrap_err();
        assert_eq!(err, format!("timed out after 10ms; {MAY_HAVE_APPLIED}"));
        assert_eq!(
            bounded(Duration::from_secs(1), async { Ok::<u8, String>(7) }, |t| t).await,
            Ok(7)
        );
    }
}
