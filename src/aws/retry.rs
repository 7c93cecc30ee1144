//! Retries of AWS calls (docs/protocol.md 5.5): all attempts of one call fit in the invocation's
//! budget, with full-jitter exponential backoff between them. Secrets Manager's calls use it, and
//! so do the RDS lookups of the alternating-users path (`crate::rds`) and the ElastiCache and
//! MemoryDB user calls (`crate::cache_user`): [`call`] runs one call under the step's deadline
//! and says how it failed; each service turns that into its own error.
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
//! before the request was sent are transport failures like the others. The RDS lookups only read
//! (`DescribeDBInstances`, `DescribeDBClusters`), and so does `DescribeUsers`. ElastiCache's
//! `ModifyUser` and MemoryDB's `UpdateUser` replace a user's whole password list, so a repeat
//! ends in the state the first attempt would have left; if the first attempt did take effect, the
//! user is `modifying` and the service refuses the repeat (`InvalidUserState`), which the caller
//! answers by waiting for the user and sending the same list again (`crate::cache_user`).

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_runtime::invocation_id::{InvocationId, InvocationIdGenerator};
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{
    BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError,
};
use rand::RngExt;
use tokio::time::Instant;
use tracing::debug;

use crate::deadline::{CallTally, Deadline, StepContext};
use crate::error::Error;

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
/// and each retry is logged at DEBUG: service, operation, attempt, delay and error code.
pub(crate) async fn with_retries<T, F, Fut>(
    service: &str,
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
            "{service} call failed; retrying"
        );
        tokio::time::sleep(delay).await;
        last = Some(error);
    }
}

/// One AWS call, as logs and errors name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    /// `Secrets Manager`, `RDS`.
    pub service: &'static str,
    /// The API operation (`GetSecretValue AWSCURRENT`, `DescribeDBInstances`).
    pub operation: &'static str,
    /// What it is about: `secret <id>`, `DB instance <id>`.
    pub subject: &'a str,
}

/// How a [`call`] ended without a result.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The invocation ran out of time: [`Error::DeadlineExceeded`] naming the step and the call.
    Deadline(Error),
    /// The service refused (or, without an invocation deadline, every attempt failed until the
    /// budget ran out): its error code, and the detail for the caller's error.
    Failed {
        /// The service's error code, if any.
        code: Option<String>,
        /// The service's code and message, or why the attempts ran out.
        detail: String,
    },
}

/// Whether a call that waits says so on stderr: set by the command line, never by the function,
/// whose stderr is its log.
static ANNOUNCE_WAITS: AtomicBool = AtomicBool::new(false);

/// The shortest time between two of one call's lines on stderr.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(10);

/// From now on, every [`call`] that retries says on stderr what it is waiting for: at its first
/// retry, then at most every ten seconds. For the command line (`doctor`): a Secrets Manager
/// endpoint that does not answer otherwise keeps an operator waiting for up to a minute per
/// secret with nothing on the screen (the reasons are logged at DEBUG, as in the function).
pub(crate) fn announce_waits() {
    ANNOUNCE_WAITS.store(true, Ordering::Relaxed);
}

/// Says on stderr, if [`announce_waits`] asked for it, that `call` is retrying after its attempt
/// `failed` (1-based), until `end` at the latest. `last` is when it last said so.
fn announce_wait(call: &Call<'_>, failed: u32, end: Instant, last: &mut Option<Instant>) {
    if !ANNOUNCE_WAITS.load(Ordering::Relaxed) {
        return;
    }
    let now = Instant::now();
    if last.is_some_and(|last| now < last + ANNOUNCE_EVERY) {
        return;
    }
    *last = Some(now);
    let Call {
        service,
        operation,
        subject,
    } = call;
    let left = end.saturating_duration_since(now).as_secs();
    let _ = writeln!(
        std::io::stderr(),
        "db-secret-rotator: waiting for {service}: {operation} of {subject}, attempt {failed} got \
         no usable answer; retrying for up to {left} s more (RUST_LOG=debug says why)"
    );
}

/// Runs `attempt` as [`with_retries`] does, under the step's budget (what is left of the
/// invocation less the safety margin) and with the production jitter.
pub(crate) async fn call<T, F, Fut>(
    call: Call<'_>,
    policy: &RetryPolicy,
    ctx: &StepContext<'_>,
    attempt: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let (budget, invocation_deadline) = ctx.deadline.call_budget();
    let limits = (budget, Deadline::min_attempt());
    let end = Instant::now() + budget;
    // The jitter is drawn once before each wait: the moment to say what the call waits for.
    let (mut failed, mut announced) = (0, None);
    let mut jitter = |ceiling| {
        failed += 1;
        announce_wait(&call, failed, end, &mut announced);
        full_jitter(ceiling)
    };
    let Call {
        service,
        operation,
        subject,
    } = call;
    let result = with_retries(
        service,
        operation,
        policy,
        limits,
        &mut jitter,
        ctx.tally,
        attempt,
    )
    .await;
    result.map_err(|failure| match failure {
        Failure::Fatal(error) => CallError::Failed {
            code: error.code,
            detail: error.detail,
        },
        Failure::OutOfTime { attempts, last } if invocation_deadline => {
            CallError::Deadline(Error::DeadlineExceeded {
                step: ctx.step.clone(),
                attempt: match last {
                    None => format!("{service} {operation} of {subject}"),
                    Some(last) => format!(
                        "{service} {operation} of {subject}, attempt {} (attempt {attempts} \
                         failed: {})",
                        attempts + 1,
                        last.label
                    ),
                },
            })
        }
        Failure::OutOfTime { attempts, last } => CallError::Failed {
            code: last.as_ref().and_then(|l| l.code.clone()),
            detail: format!(
                "gave up after {attempts} attempts in {} s: {}",
                budget.as_secs(),
                last.map_or_else(|| "no attempt".to_owned(), |l| l.detail)
            ),
        },
    })
}

/// The SDK settings of a client whose calls [`call`] retries: the SDK makes one attempt per
/// `send()` (one loop, whose budget is exact, decides), and connecting is bounded here, the
/// whole attempt by the retry loop.
pub(crate) fn single_attempts() -> (RetryConfig, TimeoutConfig) {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .build();
    (RetryConfig::disabled(), timeouts)
}

/// Hands the SDK one invocation id for every attempt of a call, as the SDK's own retries would.
#[derive(Debug, Clone)]
pub(crate) struct SameInvocation(InvocationId);

impl SameInvocation {
    /// A new random (version 4) UUID, for the attempts of one call.
    pub(crate) fn fresh() -> Self {
        let mut bytes: [u8; 16] = rand::rng().random();
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let id = format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        );
        SameInvocation(InvocationId::new(id))
    }
}

impl InvocationIdGenerator for SameInvocation {
    fn generate(&self) -> Result<Option<InvocationId>, BoxError> {
        Ok(Some(self.0.clone()))
    }
}

#[cfg(test)]
mod tests;
