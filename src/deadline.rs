//! The invocation's time budget (docs/protocol.md 5.5) and the context a step acts in.
//!
//! Below the rotators and the secret store alike: anything that waits on the network asks
//! [`Deadline`] how long it may wait, and a Secrets Manager call's retries are counted in the
//! step's [`CallTally`] for its metrics line.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::protocol::Step;

/// The time a step may spend waiting: each connection attempt gets the configured timeout, capped
/// at what is left of the invocation minus a safety margin.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    end: Option<Instant>,
    connect_timeout: Duration,
}

impl Deadline {
    /// Time kept back from the invocation deadline, to report an error instead of being killed.
    const SAFETY_MARGIN: Duration = Duration::from_millis(1000);
    /// Below this, an attempt is not worth starting.
    const MIN_ATTEMPT: Duration = Duration::from_millis(200);
    /// Bound on a query when the invocation has no deadline (tests, manual runs).
    const UNBOUNDED_QUERY_TIMEOUT: Duration = Duration::from_secs(30);
    /// Bound on all attempts of one Secrets Manager call when the invocation has no deadline.
    pub(crate) const UNBOUNDED_CALL_BUDGET: Duration = Duration::from_secs(30);

    /// Deadlines below this (September 2001) are not epoch times: 0 when none is given, and local
    /// emulators such as `cargo lambda watch` send a fixed relative value (600000).
    const EARLIEST_EPOCH_MILLIS: u64 = 1_000_000_000_000;

    /// A deadline at `end` (`None`: no invocation deadline).
    pub fn new(end: Option<Instant>, connect_timeout: Duration) -> Self {
        Deadline {
            end,
            connect_timeout,
        }
    }

    /// From the Lambda context's deadline, in milliseconds since the Unix epoch. A value that cannot
    /// be an epoch time means no deadline: each attempt is then bounded by the connect timeout.
    pub(crate) fn from_epoch_millis(deadline_ms: u64, connect_timeout: Duration) -> Self {
        if deadline_ms < Self::EARLIEST_EPOCH_MILLIS {
            return Deadline::new(None, connect_timeout);
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
        Deadline::new(Some(Instant::now() + left), connect_timeout)
    }

    fn usable(&self) -> Option<Duration> {
        self.end.map(|end| {
            end.saturating_duration_since(Instant::now())
                .saturating_sub(Self::SAFETY_MARGIN)
        })
    }

    fn budget(&self, cap: Duration, step: &Step, attempt: &str) -> Result<Duration, Error> {
        match self.usable() {
            None => Ok(cap),
            Some(left) if left < Self::MIN_ATTEMPT => Err(Error::DeadlineExceeded {
                step: step.clone(),
                attempt: attempt.to_owned(),
            }),
            Some(left) => Ok(left.min(cap)),
        }
    }

    /// The timeout for the next connection attempt, or `DeadlineExceeded` naming it.
    pub(crate) fn connect_timeout(&self, step: &Step, attempt: &str) -> Result<Duration, Error> {
        self.budget(self.connect_timeout, step, attempt)
    }

    /// Whether what is left of the invocation (less the margin) is shorter than the connect
    /// timeout: an attempt started now and left unanswered is then ended by the invocation's
    /// deadline, not by the connect timeout.
    pub(crate) fn cuts_connect_timeout(&self) -> bool {
        self.usable()
            .is_some_and(|left| left < self.connect_timeout)
    }

    /// The timeout for the next statement, or `DeadlineExceeded` naming it.
    pub(crate) fn query_timeout(&self, step: &Step, attempt: &str) -> Result<Duration, Error> {
        self.budget(Self::UNBOUNDED_QUERY_TIMEOUT, step, attempt)
    }

    /// The time all attempts of a call starting now may take together: what is left of the
    /// invocation less the safety margin, or [`Self::UNBOUNDED_CALL_BUDGET`] without an invocation
    /// deadline. The flag says whether the invocation's deadline set it.
    pub(crate) fn call_budget(&self) -> (Duration, bool) {
        match self.usable() {
            Some(left) => (left, true),
            None => (Self::UNBOUNDED_CALL_BUDGET, false),
        }
    }

    /// Below this much time, an attempt is not started.
    pub(crate) const fn min_attempt() -> Duration {
        Self::MIN_ATTEMPT
    }
}

/// What a step's Secrets Manager calls cost beyond one attempt each: retries, and how many
/// answers were throttling. Shared by the step's calls; read for its metrics line.
#[derive(Debug, Default)]
pub struct CallTally {
    retries: AtomicU32,
    throttled: AtomicU32,
}

impl CallTally {
    /// A tally at zero.
    pub const fn new() -> Self {
        CallTally {
            retries: AtomicU32::new(0),
            throttled: AtomicU32::new(0),
        }
    }

    /// Counts one attempt beyond the first.
    pub(crate) fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one throttling answer.
    pub(crate) fn throttle(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Attempts beyond the first, over every call so far.
    pub fn retries(&self) -> u32 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Throttling answers received so far.
    pub fn throttled(&self) -> u32 {
        self.throttled.load(Ordering::Relaxed)
    }
}

/// Who is acting, for errors and logs, and how much time is left.
#[derive(Debug, Clone, Copy)]
pub struct StepContext<'a> {
    /// Secret ARN or name.
    pub secret_id: &'a str,
    /// The running step.
    pub step: &'a Step,
    /// The invocation's time budget.
    pub deadline: Deadline,
    /// The step's Secrets Manager retries, for its metrics line.
    pub tally: &'a CallTally,
}

impl StepContext<'_> {
    /// [`Deadline::connect_timeout`] for this step.
    pub(crate) fn connect_timeout(&self, attempt: &str) -> Result<Duration, Error> {
        self.deadline.connect_timeout(self.step, attempt)
    }

    /// The limit of the next connection attempt: how long it may wait, and what ends it when the
    /// server does not answer in that time. `DeadlineExceeded` when too little time is left to
    /// start it.
    pub(crate) fn connect_limit(&self, attempt: &str) -> Result<AttemptLimit, Error> {
        // Asked before the timeout is computed: time only shrinks, so a cap seen now holds.
        let cut = self.deadline.cuts_connect_timeout();
        let timeout = self.connect_timeout(attempt)?;
        Ok(AttemptLimit {
            timeout,
            cut_by_deadline: cut.then(|| (self.step.clone(), attempt.to_owned())),
        })
    }

    /// [`Deadline::query_timeout`] for this step.
    pub(crate) fn query_timeout(&self, attempt: &str) -> Result<Duration, Error> {
        self.deadline.query_timeout(self.step, attempt)
    }
}

/// How long one connection attempt may wait for the server (docs/protocol.md 5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimit {
    /// The attempt's timeout: the connect timeout, or less when the invocation ends sooner.
    pub timeout: Duration,
    /// The step and the attempt, when the invocation's deadline rather than the connect timeout
    /// set `timeout`: the server was not given its connect timeout, so a silence is the
    /// deadline's doing (`DeadlineExceeded`), not the server's (`DatabaseTimeout`).
    cut_by_deadline: Option<(Step, String)>,
}

impl AttemptLimit {
    /// The error of an attempt that got no answer within [`Self::timeout`]; `phase` says what was
    /// waited for (`connecting`, `logging in`), `engine` whose server it was.
    pub(crate) fn unanswered(&self, engine: crate::engine::Engine, phase: &str) -> Error {
        match &self.cut_by_deadline {
            Some((step, attempt)) => Error::DeadlineExceeded {
                step: step.clone(),
                attempt: format!(
                    "{attempt} finished ({phase}: no answer within the {:.2} s the invocation had \
                     left, less than the connect timeout)",
                    self.timeout.as_secs_f64()
                ),
            },
            None => Error::Unanswered {
                engine,
                action: "logging in",
                detail: format!("{phase} timed out after {:?}", self.timeout),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_caps_and_refuses() {
        let step = Step::SetSecret;
        let d = Deadline::new(None, Duration::from_secs(5));
        assert_eq!(
            d.connect_timeout(&step, "x").unwrap(),
            Duration::from_secs(5)
        );
        let d = Deadline::new(
            Some(Instant::now() + Duration::from_secs(3)),
            Duration::from_secs(5),
        );
        let t = d.connect_timeout(&step, "x").unwrap();
        assert!(
            t <= Duration::from_secs(2) && t > Duration::from_millis(1500),
            "{t:?}"
        );
        let d = Deadline::new(
            Some(Instant::now() + Duration::from_millis(1100)),
            Duration::from_secs(5),
        );
        let e = d
            .connect_timeout(&step, "login with current secret")
            .unwrap_err();
        assert_eq!(e.error_type(), "DeadlineExceeded");
        assert!(
            e.to_string().contains("setSecret")
                && e.to_string().contains("login with current secret")
        );
        let now_ms = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        assert!(
            Deadline::from_epoch_millis(now_ms + 500, Duration::from_secs(5))
                .connect_timeout(&step, "x")
                .is_err()
        );
        let t = Deadline::from_epoch_millis(now_ms + 4000, Duration::from_secs(5))
            .connect_timeout(&step, "x")
            .unwrap();
        assert!(
            t <= Duration::from_secs(3) && t > Duration::from_millis(2500),
            "{t:?}"
        );
        // Not epoch times: no deadline, the connect timeout alone.
        for not_epoch in [0, 1, 600_000] {
            assert_eq!(
                Deadline::from_epoch_millis(not_epoch, Duration::from_secs(5))
                    .connect_timeout(&step, "x")
                    .unwrap(),
                Duration::from_secs(5)
            );
        }
    }

    #[test]
    fn an_attempt_the_deadline_cut_short_ends_as_the_deadline() {
        let step = Step::SetSecret;
        let tally = CallTally::default();
        let ctx = |end: Option<Duration>| StepContext {
            secret_id: "s",
            step: &step,
            deadline: Deadline::new(end.map(|d| Instant::now() + d), Duration::from_secs(5)),
            tally: &tally,
        };
        let engine = crate::engine::Engine::Postgres;
        // No deadline, or one beyond the connect timeout: the server had its whole timeout.
        for end in [None, Some(Duration::from_secs(60))] {
            let limit = ctx(end).connect_limit("login with current secret").unwrap();
            assert_eq!(limit.timeout, Duration::from_secs(5));
            let e = limit.unanswered(engine, "connecting");
            assert_eq!(e.error_type(), "DatabaseTimeout", "{e}");
        }
        // 3 s left less the 1 s margin: the attempt gets 2 s of its 5, and its silence is the
        // deadline's.
        let limit = ctx(Some(Duration::from_secs(3)))
            .connect_limit("login with current secret")
            .unwrap();
        assert!(limit.timeout <= Duration::from_secs(2), "{limit:?}");
        let e = limit.unanswered(engine, "logging in");
        assert_eq!(e.error_type(), "DeadlineExceeded", "{e}");
        let text = e.to_string();
        assert!(
            text.contains("setSecret")
                && text.contains("login with current secret")
                && text.contains("logging in"),
            "{text}"
        );
    }

    #[test]
    fn the_context_asks_its_deadline() {
        let step = Step::TestSecret;
        let tally = CallTally::default();
        let ctx = StepContext {
            secret_id: "s",
            step: &step,
            deadline: Deadline::new(None, Duration::from_millis(1500)),
            tally: &tally,
        };
        assert_eq!(
            ctx.connect_timeout("x").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            ctx.query_timeout("x").unwrap(),
            Deadline::UNBOUNDED_QUERY_TIMEOUT
        );
    }
}
