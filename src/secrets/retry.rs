//! Retries of Secrets Manager calls (docs/protocol.md 5.5): all attempts of one call fit in the
//! invocation's budget, with full-jitter exponential backoff between them.
//!
//! The failures retried, and why sending each operation again is safe:
//!
//! - **Throttling** (`ThrottlingException`, `TooManyRequestsException`, HTTP 429, …): the service
//!   refused the request without acting on it. The regional write quota is shared by every
//!   writer, so a storm of rotations meets it; the randomised delays spread the retries out.
//! - **5xx answers, transport failures, an attempt that timed out, an unreadable answer**: the
//!   request may or may not have taken effect. `DescribeSecret` and `GetSecretValue` only read.
//!   `PutSecretValue` carries the rotation token as `ClientRequestToken`, its idempotency key: a
//!   repeat with the same value is accepted and creates nothing. `UpdateSecretVersionStage` says
//!   where `AWSCURRENT` must end up, so a repeat cannot move it any further; once the first
//!   attempt has moved it, the service refuses the repeat (`InvalidParameterException`: the label
//!   is no longer on `RemoveFromVersionId`), which the store resolves by reading the labels.
//!
//! Anything else (access denied, not found, invalid parameters) fails at once. Connection errors
//! before the request was sent are transport failures like the others.

use std::future::Future;
use std::time::Duration;

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use rand::RngExt;
use tokio::time::Instant;
use tracing::debug;

use crate::deadline::CallTally;

/// Error codes that mean "slow down": the request was refused, not acted on. The list AWS gives
/// for Secrets Manager, less `LimitExceededException`, which Secrets Manager uses for quotas on
/// the secret itself (too many versions) that no retry can fix.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
];

/// Error codes of a transient failure on the service's side.
const TRANSIENT_CODES: &[&str] = &[
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "PriorRequestNotComplete",
];

/// How the attempts of one Secrets Manager call are spaced and bounded.
///
/// Before retry `n` (1-based) the call sleeps a uniformly random time between zero and
/// `min(cap, base × 2ⁿ⁻¹)`: "full jitter", which spreads the retries of many callers over the
/// whole interval so that a shared quota stays in use without synchronised bursts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first delay.
    pub base: Duration,
    /// Largest ceiling of any delay.
    pub cap: Duration,
    /// Longest single attempt (connection, request and answer).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 50 ms doubling up to 2 s, 5 s per attempt. A caller at the cap retries every second on
    /// average; as a storm thins out, a longer cap would leave the quota idle between the last
    /// callers' attempts and stretch the storm's tail, while throttled answers are quick and
    /// cheap for the caller.
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the delay before retry `retry` (1-based).
    pub(crate) fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

/// A uniformly random delay in `[0, ceiling)`: the production jitter.
pub(crate) fn full_jitter(ceiling: Duration) -> Duration {
    ceiling.mul_f64(rand::rng().random::<f64>())
}

/// Whether a failed attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Refused by a quota: retried.
    Throttled,
    /// May succeed when repeated: retried.
    Transient,
    /// Will fail again: not retried.
    Fatal,
}

/// One failed attempt, reduced to what is logged and reported: never the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttemptError {
    pub kind: Kind,
    /// The service's error code, when it answered with one.
    pub code: Option<String>,
    /// A short label for logs: the code, `HTTP 503`, `timeout`, `connection`, …
    pub label: String,
    /// The service's code and message, or the transport error's chain.
    pub detail: String,
}

impl AttemptError {
    /// Classifies an SDK error. SDK errors describe the answer or the transport, never the
    /// request body.
    pub(crate) fn from_sdk<E>(err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_owned);
        let detail = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_owned(),
            _ => DisplayErrorContext(err).to_string(),
        };
        let (kind, transport) = match err {
            SdkError::ServiceError(_) => (classify(code.as_deref(), status), None),
            SdkError::TimeoutError(_) => (Kind::Transient, Some("timeout")),
            SdkError::ResponseError(_) => (Kind::Transient, Some("unreadable response")),
            SdkError::DispatchFailure(d) if d.is_timeout() => (Kind::Transient, Some("timeout")),
            SdkError::DispatchFailure(d) if d.is_io() => (Kind::Transient, Some("connection")),
            SdkError::DispatchFailure(d) if d.as_other().is_some() => {
                (Kind::Transient, Some("connection"))
            }
            _ => (Kind::Fatal, Some("request not sent")),
        };
        let label = match (&code, status, transport) {
            (Some(code), _, _) => code.clone(),
            (None, Some(status), _) => format!("HTTP {status}"),
            (None, None, Some(transport)) => transport.to_owned(),
            (None, None, None) => "unknown".to_owned(),
        };
        AttemptError {
            kind,
            code,
            label,
            detail,
        }
    }

    /// An attempt that got no answer within `limit`.
    pub(crate) fn timed_out(limit: Duration) -> Self {
        AttemptError {
            kind: Kind::Transient,
            code: None,
            label: "timeout".to_owned(),
            detail: format!("no answer within {:.1} s", limit.as_secs_f64()),
        }
    }
}

/// Throttled, transient or fatal, from the service's error code and HTTP status.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> Kind {
    match (code, status) {
        (Some(code), _) if THROTTLING_CODES.contains(&code) => Kind::Throttled,
        (_, Some(429)) => Kind::Throttled,
        (Some(code), _) if TRANSIENT_CODES.contains(&code) => Kind::Transient,
        (_, Some(500..=599)) => Kind::Transient,
        _ => Kind::Fatal,
    }
}

/// Why a call ended without a result.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An attempt failed in a way that repeating cannot fix.
    Fatal(AttemptError),
    /// The budget ran out: `attempts` were made, the last failing with `last` (`None`: no time
    /// for even one).
    OutOfTime {
        attempts: u32,
        last: Option<AttemptError>,
    },
}

/// Runs `attempt` until it succeeds, fails for good, or the `budget` (all attempts and delays
/// together, from now) runs out. Each attempt gets at most the policy's attempt timeout and never
/// more than what is left; no attempt starts with less than `min_attempt` left. Delays come from
/// `jitter`, given each retry's ceiling. Retries and throttling answers are counted in `tally`
/// and each retry is logged at DEBUG: operation, attempt, delay and error code.
pub(crate) async fn with_retries<T, F, Fut>(
    operation: &str,
    policy: &RetryPolicy,
    (budget, min_attempt): (Duration, Duration),
    jitter: &mut dyn FnMut(Duration) -> Duration,
    tally: &CallTally,
    mut attempt: F,
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let end = Instant::now() + budget;
    let mut attempts = 0u32;
    let mut last = None;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left < min_attempt {
            return Err(Failure::OutOfTime { attempts, last });
        }
        attempts += 1;
        let limit = left.min(policy.attempt_timeout);
        let error = match tokio::time::timeout(limit, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_) => AttemptError::timed_out(limit),
        };
        if error.kind == Kind::Throttled {
            tally.throttle();
        }
        if error.kind == Kind::Fatal {
            return Err(Failure::Fatal(error));
        }
        let ceiling = policy.ceiling(attempts);
        let left = end.saturating_duration_since(Instant::now());
        if left < min_attempt {
            return Err(Failure::OutOfTime {
                attempts,
                last: Some(error),
            });
        }
        // The last delay is cut short so that one more attempt still fits.
        let delay = jitter(ceiling).min(ceiling).min(left - min_attempt);
        tally.retry();
        debug!(
            operation,
            attempt = attempts,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            error_code = %error.label,
            "Secrets Manager call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        last = Some(error);
    }
}

#[cfg(test)]
mod tests;
