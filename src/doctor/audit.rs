//! The audit: which secrets, each one examined (and, with `--repair`, repaired and examined
//! again), and the report.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

use super::args::Options;
use super::examine::{Examiner, Stuck};
use super::repair;
use super::report::{Action, Failure, Problem, Repair, Report, SecretReport};
use crate::app::App;
use crate::deadline::{CallTally, Deadline, StepContext};
use crate::error::Error;
use crate::protocol::Step;
use crate::rds::RdsApi;
use crate::rotation::Scope;
use crate::rotators::Rotator;
use crate::secrets::{SecretInfo, SecretInventory, SecretStore};

/// How long one secret's audit may take when no invocation deadline bounds it (the command
/// line): its Secrets Manager calls, logins and repair together.
pub const PER_SECRET: Duration = Duration::from_secs(60);

/// Secrets examined at once.
const AT_ONCE: usize = 4;

/// Secrets per `ListSecrets` page (the API's largest).
const PAGE_SIZE: i32 = 100;

/// What `ListSecrets` failures are reported under.
const LISTING: &str = "ListSecrets";

/// The audit of a set of secrets, over the container's (or the command line's) state.
pub struct Doctor<'a, S, R, A> {
    app: &'a App<S, R, A>,
    now: SystemTime,
    deadline: Option<Deadline>,
    step: Step,
    tally: CallTally,
}

/// One secret's outcome: its report, a failure, or both (a repair that failed).
#[derive(Default)]
struct Outcome {
    secret: Option<SecretReport>,
    failure: Option<Failure>,
}

impl Outcome {
    fn failed(secret: &str, error: Error) -> Self {
        Outcome {
            secret: None,
            failure: Some(Failure {
                secret: secret.to_owned(),
                error,
            }),
        }
    }
}

impl<'a, S, R, A> Doctor<'a, S, R, A>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    /// An audit now, each secret within [`PER_SECRET`].
    pub fn new(app: &'a App<S, R, A>) -> Self {
        Doctor {
            app,
            now: SystemTime::now(),
            deadline: None,
            step: Step::Audit,
            tally: CallTally::new(),
        }
    }

    /// The audit as if it ran at `now`: ages, overdue rotations and the wait before a label is
    /// removed are measured from it.
    pub fn at(mut self, now: SystemTime) -> Self {
        self.now = now;
        self
    }

    /// Every call within `deadline` (a Lambda invocation's) instead of [`PER_SECRET`] each.
    pub fn within(mut self, deadline: Deadline) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn context<'c>(&'c self, secret_id: &'c str) -> StepContext<'c> {
        let deadline = self.deadline.unwrap_or_else(|| {
            Deadline::new(
                Some(Instant::now() + PER_SECRET),
                self.app.config.connect_timeout,
            )
        });
        StepContext {
            secret_id,
            step: &self.step,
            deadline,
            tally: &self.tally,
        }
    }

    /// Audits the secrets `options` select, a few at a time.
    pub async fn run(&self, options: &Options) -> Report {
        let mut report = Report::default();
        let targets = self.targets(options, &mut report).await;
        let outcomes: Vec<Outcome> = stream::iter(&targets)
            .map(|id| self.audit(id, options))
            .buffered(AT_ONCE)
            .collect()
            .await;
        let mut seen = HashSet::new();
        for outcome in outcomes {
            if let Some(secret) = outcome.secret {
                // A secret named twice (by name and by ARN) is reported once.
                if seen.insert(secret.arn.clone()) {
                    report.secrets.push(secret);
                }
            }
            report.failures.extend(outcome.failure);
        }
        report
    }

    /// The secrets named, in order, then those listed (`--all`, or `--function` alone) by name.
    async fn targets(&self, options: &Options, report: &mut Report) -> Vec<String> {
        let mut targets: Vec<String> = Vec::new();
        for secret in &options.secrets {
            if !targets.contains(secret) {
                targets.push(secret.clone());
            }
        }
        if !options.lists() {
            return targets;
        }
        // Every page has its own budget: a large account has many.
        let ctx = StepContext {
            deadline: self
                .deadline
                .unwrap_or_else(|| Deadline::new(None, self.app.config.connect_timeout)),
            ..self.context(LISTING)
        };
        let mut listed = match self.app.store.list(PAGE_SIZE, &ctx).await {
            Ok(listed) => listed,
            Err(error) => {
                report.failures.push(Failure {
                    secret: LISTING.to_owned(),
                    error,
                });
                return targets;
            }
        };
        listed.retain(|s| {
            s.rotation_configured()
                && options
                    .function
                    .as_deref()
                    .is_none_or(|function| rotated_by(s, function))
        });
        if listed.is_empty() {
            warn!(
                function = options.function.as_deref(),
                "no secret with rotation configured matches"
            );
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        for secret in listed {
            if !targets.contains(&secret.arn) && !targets.contains(&secret.name) {
                targets.push(secret.arn);
            }
        }
        targets
    }

    /// One secret: described, examined, and repaired when asked and possible.
    async fn audit(&self, id: &str, options: &Options) -> Outcome {
        let ctx = self.context(id);
        let info = match self.app.store.inspect(id, &ctx).await {
            Ok(info) => info,
            Err(error) => return Outcome::failed(id, error),
        };
        if let Some(function) = options.function.as_deref() {
            if !rotated_by(&info, function) {
                warn!(secret_id = %info.arn, function, "skipped: not rotated by this function");
                return Outcome::default();
            }
        }
        // The secret's own ARN from here on: logs and errors name it, whatever was typed.
        let ctx = StepContext {
            secret_id: &info.arn,
            ..ctx
        };
        let examiner = Examiner {
            scope: Scope { app: self.app, ctx },
            now: self.now,
            login: options.login,
        };
        let found = match examiner.examine(&info).await {
            Ok(found) => found,
            Err(error) => return Outcome::failed(&info.arn, error),
        };
        let mut secret = SecretReport {
            arn: info.arn.clone(),
            name: info.name.clone(),
            problems: found.problems,
            repairs: Vec::new(),
        };
        let mut failure = None;
        if let Some(stuck) = found.stuck {
            match repair::plan(&stuck) {
                Some(action) if options.repair => {
                    failure = self
                        .repair(&examiner, &info, &stuck, action, options, &mut secret)
                        .await;
                }
                Some(action) => secret.repairs.push(repair::proposal(
                    action,
                    &stuck,
                    self.now,
                    options.settled_after,
                )),
                None => {}
            }
        }
        let codes: Vec<&str> = secret.problems.iter().map(|p| p.code.as_str()).collect();
        info!(secret_id = %secret.arn, problems = %codes.join(","), "audited");
        Outcome {
            secret: Some(secret),
            failure,
        }
    }
}

impl<S, R, A> Doctor<'_, S, R, A>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    /// Repairs `stuck` with `action` (a label is removed only from a version older than
    /// `options.settled_after`), then examines the secret again: its problems become what the
    /// repair left. Returns the failure of a call, if any.
    async fn repair(
        &self,
        examiner: &Examiner<'_, S, R, A>,
        info: &SecretInfo,
        stuck: &Stuck,
        action: Action,
        options: &Options,
        secret: &mut SecretReport,
    ) -> Option<Failure> {
        let settled = options.settled_after;
        let made = repair::make(examiner, &info.arn, action, stuck, self.now, settled);
        match made.await {
            Ok(repair) if repair.done => {
                secret.repairs.push(repair);
                match self.reexamine(examiner, &info.arn).await {
                    Ok(problems) => {
                        secret.problems = problems;
                        None
                    }
                    Err(error) => Some(failed(info, error)),
                }
            }
            Ok(repair) => {
                secret.repairs.push(repair);
                None
            }
            Err(error) => {
                secret.repairs.push(Repair {
                    action,
                    done: false,
                    detail: format!("failed: {error}"),
                });
                Some(failed(info, error))
            }
        }
    }

    /// The problems of the secret `arn` as they are now.
    async fn reexamine(
        &self,
        examiner: &Examiner<'_, S, R, A>,
        arn: &str,
    ) -> Result<Vec<Problem>, Error> {
        let info = self.app.store.inspect(arn, &examiner.scope.ctx).await?;
        Ok(examiner.examine(&info).await?.problems)
    }
}

fn failed(info: &SecretInfo, error: Error) -> Failure {
    Failure {
        secret: info.arn.clone(),
        error,
    }
}

/// Whether `info`'s rotation function is `function`: an ARN (compared without a version or
/// alias qualifier) or a bare function name.
pub(super) fn rotated_by(info: &SecretInfo, function: &str) -> bool {
    let Some(rotated_by) = info.rotation_function.as_deref() else {
        return false;
    };
    if function.starts_with("arn:") {
        unqualified(rotated_by) == unqualified(function)
    } else {
        rotated_by.split(':').nth(6) == Some(function)
    }
}

/// A Lambda function ARN without its `:version` or `:alias`.
fn unqualified(arn: &str) -> &str {
    match arn.match_indices(':').nth(6) {
        Some((at, _)) => &arn[..at],
        None => arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_match_by_arn_or_name() {
        let info = |function: Option<&str>| SecretInfo {
            rotation_function: function.map(str::to_owned),
            ..SecretInfo::default()
        };
        let arn = "arn:aws:lambda:eu-west-1:123456789012:function:rotator";
        let secret = info(Some(arn));
        assert!(rotated_by(&secret, arn));
        assert!(rotated_by(&secret, &format!("{arn}:live")));
        assert!(rotated_by(&secret, "rotator"));
        assert!(!rotated_by(&secret, "rotator2"));
        assert!(!rotated_by(
            &secret,
            "arn:aws:lambda:eu-west-1:123456789012:function:rot"
        ));
        assert!(rotated_by(&info(Some(&format!("{arn}:7"))), arn));
        assert!(!rotated_by(&info(None), "rotator"));
    }
}
