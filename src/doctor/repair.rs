//! Repairs of a stuck `AWSPENDING`: staging labels only, never a database password.
//!
//! - `AWSCURRENT` still logs in: the database never took the stuck version's password (or, for
//!   alternating users, gave it to the other account, which keeps working): `AWSPENDING` is
//!   removed from the stuck version, and the next rotation starts clean.
//! - Only the stuck version logs in: the database already holds its password, so the rotation
//!   is finished: `AWSCURRENT` moves to it, as finishSecret would.
//! - Neither logs in: nothing is changed.
//!
//! Removing the label while a rotation is running would strand the password that rotation is
//! setting, so a version younger than the settle time ([`SETTLED`] unless `--settled-after` says
//! otherwise) keeps its label. Moving `AWSCURRENT` is what
//! the running rotation's own finishSecret would do, and needs no such wait.

use std::time::{Duration, SystemTime};

use tracing::info;

use super::examine::Stuck;
use super::report::{Action, Repair};
use super::when::{age, utc};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;
use crate::secrets::{SecretInventory, SecretStore};

/// How old a stuck version must be, by default, before its label is removed: a rotation's four
/// steps, each within the function's timeout (at most 15 minutes), are over by then.
pub(super) const SETTLED: Duration = Duration::from_secs(3_600);

/// The repair `stuck` calls for, once `--login` has told which credential logs in.
pub(super) fn plan(stuck: &Stuck) -> Option<Action> {
    let (current, pending) = stuck.logins?;
    Some(match (current, pending) {
        (true, _) => Action::RemovedStalePending,
        (false, true) => Action::CompletedRotation,
        (false, false) => Action::None,
    })
}

/// Why `action` must not be made at `now`, if so, with the settle time `settled`.
fn refusal(action: Action, stuck: &Stuck, now: SystemTime, settled: Duration) -> Option<String> {
    match action {
        Action::RemovedStalePending => match stuck.created {
            None => Some(
                "the version's creation date is unknown, so a rotation still running cannot be \
                 ruled out"
                    .to_owned(),
            ),
            Some(created) if created + settled > now => Some(format!(
                "the version was created {} ago and a rotation may still be running; retry \
                 after {}",
                age(created, now),
                utc(created + settled)
            )),
            Some(_) => None,
        },
        Action::CompletedRotation if stuck.current_version.is_none() => {
            Some("no version is labelled AWSCURRENT to move the label from".to_owned())
        }
        Action::CompletedRotation | Action::None => None,
    }
}

const NOTHING_TO_DO: &str = "neither AWSCURRENT nor AWSPENDING logs in, so nothing is changed: \
    find which password the database holds, then see docs/deployment.md, \"Recovering from a \
    stuck AWSPENDING\"";

/// The repair as a run without `--repair` reports it: what it would do, not done.
pub(super) fn proposal(
    action: Action,
    stuck: &Stuck,
    now: SystemTime,
    settled: Duration,
) -> Repair {
    let mut detail = match action {
        Action::RemovedStalePending => format!(
            "would remove AWSPENDING from version {} (AWSCURRENT still logs in)",
            stuck.version
        ),
        Action::CompletedRotation => format!(
            "would move AWSCURRENT to version {} (only it logs in), as finishSecret would",
            stuck.version
        ),
        Action::None => NOTHING_TO_DO.to_owned(),
    };
    match refusal(action, stuck, now, settled) {
        Some(why) => detail.push_str(&format!("; not yet: {why}")),
        None if action != Action::None => detail.push_str("; run again with --repair"),
        None => {}
    }
    Repair {
        action,
        done: false,
        detail,
    }
}

/// Makes the repair of `stuck` on the secret `arn` at `now`, with the settle time `settled`.
/// `Err` when the Secrets Manager call fails.
pub(super) async fn make<S: SecretStore + SecretInventory>(
    store: &S,
    arn: &str,
    action: Action,
    stuck: &Stuck,
    now: SystemTime,
    settled: Duration,
    ctx: &StepContext<'_>,
) -> Result<Repair, Error> {
    let repair = |done: bool, detail: String| Repair {
        action,
        done,
        detail,
    };
    if let Some(why) = refusal(action, stuck, now, settled) {
        return Ok(repair(false, format!("not done: {why}")));
    }
    let version = stuck.version.as_str();
    match (action, stuck.current_version.as_deref()) {
        (Action::RemovedStalePending, _) => {
            info!(
                secret_id = arn,
                version, "removing AWSPENDING: AWSCURRENT still logs in"
            );
            store
                .remove_stage(arn, Stage::Pending, version, ctx)
                .await?;
            Ok(repair(
                true,
                format!(
                    "removed AWSPENDING from version {version}; the next rotation starts clean"
                ),
            ))
        }
        (Action::CompletedRotation, Some(current)) => {
            info!(
                secret_id = arn,
                version,
                from_version = current,
                "moving AWSCURRENT: only the pending version logs in"
            );
            store.promote(arn, version, current, ctx).await?;
            Ok(repair(
                true,
                format!(
                    "moved AWSCURRENT to version {version}, as finishSecret would; version \
                     {current} is AWSPREVIOUS"
                ),
            ))
        }
        (Action::CompletedRotation, None) | (Action::None, _) => {
            Ok(repair(false, NOTHING_TO_DO.to_owned()))
        }
    }
}
