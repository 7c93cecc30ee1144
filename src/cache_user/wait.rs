//! Waiting for a user to be `active`, within the invocation's deadline.
//!
//! A password change takes the user through `modifying` while it reaches every node: usually
//! seconds, sometimes many minutes. The function never waits longer than the invocation allows:
//! the wait ends when what is left of the invocation, less the safety margin
//! (`crate::deadline`), no longer leaves room for another look, and the step then fails with
//! [`Error::DeadlineExceeded`] naming the user and the status it was last seen in. Secrets
//! Manager retries the rotation, and the next invocation picks the wait up again: every step
//! that waits is idempotent.
//!
//! The looks are paced with exponential backoff and "equal jitter" (at least half of each
//! delay's ceiling, plus a random part): the first look is immediate, a change that completes in
//! a second or two is seen quickly, and a long one costs a `DescribeUsers` every few seconds
//! only. Each look is itself a call under the deadline, retried if throttled.

use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;
use tracing::{debug, info};

use super::{CacheUser, CacheUserApi, UserArn, UserStatus};
use crate::deadline::{Deadline, StepContext};
use crate::error::Error;

/// How the looks of a wait are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// The ceiling of the first delay.
    pub base: Duration,
    /// The largest ceiling of any delay.
    pub cap: Duration,
}

impl Default for WaitPolicy {
    /// 1 s doubling up to 8 s: a delay is 0.5–1 s at first, 4–8 s after three looks.
    fn default() -> Self {
        WaitPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(8),
        }
    }
}

impl WaitPolicy {
    /// The ceiling of the delay after look `look` (1-based).
    pub(crate) fn ceiling(&self, look: u32) -> Duration {
        let doublings = look.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }

    /// A delay in `[ceiling / 2, ceiling)`.
    fn delay(&self, look: u32) -> Duration {
        let ceiling = self.ceiling(look);
        let half = ceiling / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// Waits for `user` to be `active` and returns it as last described, pacing the looks with the
/// default [`WaitPolicy`]. Fails with the service's error when the user does not exist, and with
/// [`Error::DeadlineExceeded`] naming the user and its last status when the invocation's time
/// (less the safety margin) runs out first. Without an invocation deadline (the command line,
/// tests) the wait is bounded by the same budget as one AWS call.
pub async fn wait_active<A: CacheUserApi>(
    api: &A,
    user: &UserArn,
    ctx: &StepContext<'_>,
) -> Result<CacheUser, Error> {
    wait_active_with(api, user, &WaitPolicy::default(), ctx).await
}

/// [`wait_active`] with a given pace.
pub async fn wait_active_with<A: CacheUserApi>(
    api: &A,
    user: &UserArn,
    pace: &WaitPolicy,
    ctx: &StepContext<'_>,
) -> Result<CacheUser, Error> {
    let service = user.service();
    // The end is fixed once, on the runtime's clock, as the retry loop fixes its own.
    let (budget, _) = ctx.deadline.call_budget();
    let end = Instant::now() + budget;
    let mut looks = 0u32;
    let mut last: Option<UserStatus> = None;
    let mut last_chance = false;
    let out_of_time = |looks: u32, status: &UserStatus| Error::DeadlineExceeded {
        step: ctx.step.clone(),
        attempt: format!(
            "{service} user {user} became active (it was last seen {status}, after {looks} looks)"
        ),
    };
    loop {
        let described = match api.describe(user, ctx).await {
            Ok(Some(described)) => described,
            Ok(None) => return Err(service.user_not_found(ctx, "DescribeUsers", user)),
            // A look cut short by the deadline: name the status seen before it.
            Err(e @ Error::DeadlineExceeded { .. }) => {
                return Err(last.as_ref().map_or(e, |status| out_of_time(looks, status)));
            }
            Err(e) => return Err(e),
        };
        looks += 1;
        if described.status == UserStatus::Active {
            if looks > 1 {
                info!(service = service.name(), user = %user, looks, "the user is active");
            }
            return Ok(described);
        }
        if matches!(described.status, UserStatus::Deleting) {
            return Err(service.error(
                ctx,
                "DescribeUsers",
                user,
                None,
                "the user is being deleted".to_owned(),
            ));
        }
        let left = end.saturating_duration_since(Instant::now());
        if last_chance || left < Deadline::min_attempt() {
            return Err(out_of_time(looks, &described.status));
        }
        // The last delay is cut short so that one more look still fits, and that look is the
        // last.
        let mut delay = pace.delay(looks);
        if delay + Deadline::min_attempt() >= left {
            delay = left - Deadline::min_attempt();
            last_chance = true;
        }
        debug!(
            service = service.name(),
            user = %user,
            status = %described.status,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "the user is not active yet; waiting"
        );
        last = Some(described.status);
        tokio::time::sleep(delay).await;
    }
}
