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
//!
//! Each repair looks again right before it acts (labels, logins, and for a promotion the checks
//! setSecret makes of a pending version), and a promotion is verified afterwards: `AWSCURRENT`
//! must log in, else it moves back.

use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use super::examine::{Examiner, Stuck};
use super::report::{Action, Repair};
use super::when::{age, utc};
use crate::credentials::DbSecret;
use crate::engine::is_clone_of;
use crate::error::Error;
use crate::protocol::{Stage, Strategy};
use crate::rds::RdsApi;
use crate::rotation::Plan;
use crate::rotators::Rotator;
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
/// `Err` when a Secrets Manager call fails.
///
/// The examination that chose `action` may be minutes old, and a rotation retried on an old
/// token may have run since: right before a label moves, the labels are read again and the
/// logins that chose the action are made again, and a version promoted is checked the way
/// setSecret checks a pending one (the current user or its alternate, the same host and port).
/// After `AWSCURRENT` moves, the new current credential must log in, else the label goes back.
pub(super) async fn make<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    action: Action,
    stuck: &Stuck,
    now: SystemTime,
    settled: Duration,
) -> Result<Repair, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let (store, ctx) = (&examiner.scope.app.store, &examiner.scope.ctx);
    let repair = |done: bool, detail: String| Repair {
        action,
        done,
        detail,
    };
    if let Some(why) = refusal(action, stuck, now, settled) {
        return Ok(repair(false, format!("not done: {why}")));
    }
    if let Some(why) = recheck(examiner, arn, action, stuck).await? {
        return Ok(repair(
            false,
            format!("not done: {why}; run the doctor again"),
        ));
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
            let (done, detail) = promote_and_verify(examiner, arn, version, current).await?;
            Ok(repair(done, detail))
        }
        (Action::CompletedRotation, None) | (Action::None, _) => {
            Ok(repair(false, NOTHING_TO_DO.to_owned()))
        }
    }
}

/// Moves `AWSCURRENT` from version `current` to `version`, as finishSecret would, then logs in
/// with the new current credential; when it does not log in, moves the label back. Returns
/// whether the rotation is complete, and what was done.
async fn promote_and_verify<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    version: &str,
    current: &str,
) -> Result<(bool, String), Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let (store, ctx) = (&examiner.scope.app.store, &examiner.scope.ctx);
    info!(
        secret_id = arn,
        version,
        from_version = current,
        "moving AWSCURRENT: only the pending version logs in"
    );
    store.promote(arn, version, current, ctx).await?;
    if logs_in(examiner, arn, Stage::Current, None).await? == Some(true) {
        return Ok((
            true,
            format!(
                "moved AWSCURRENT to version {version}, as finishSecret would; version {current} \
                 is AWSPREVIOUS"
            ),
        ));
    }
    warn!(
        secret_id = arn,
        version, "the promoted version does not log in; moving AWSCURRENT back"
    );
    store.promote(arn, current, version, ctx).await?;
    Ok((
        false,
        format!(
            "moved AWSCURRENT to version {version}, which then did not log in, so AWSCURRENT \
             was moved back to version {current} (the service labels version {version} \
             AWSPREVIOUS as it does so)"
        ),
    ))
}

/// Why `action` must not be made now, found by looking again: the labels moved, a login that
/// chose the action no longer answers the same, or the stuck version is not a credential a
/// rotation of this secret could have written. `None`: go ahead.
async fn recheck<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    action: Action,
    stuck: &Stuck,
) -> Result<Option<String>, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let labels = examiner
        .scope
        .app
        .store
        .describe(arn, &examiner.scope.ctx)
        .await?;
    let version = stuck.version.as_str();
    if !labels.has_stage(version, Stage::Pending)
        || labels.has_stage(version, Stage::Current)
        || labels.version_with(Stage::Current) != stuck.current_version.as_deref()
    {
        return Ok(Some(
            "the labels changed since the examination (a rotation ran meanwhile)".to_owned(),
        ));
    }
    let current = logs_in(examiner, arn, Stage::Current, None).await?;
    match action {
        Action::RemovedStalePending if current != Some(true) => {
            Ok(Some("AWSCURRENT no longer logs in".to_owned()))
        }
        Action::CompletedRotation => {
            if current == Some(true) {
                return Ok(Some("AWSCURRENT logs in again".to_owned()));
            }
            if let Some(why) = foreign_pending(examiner, arn, version).await? {
                return Ok(Some(why));
            }
            match logs_in(examiner, arn, Stage::Pending, Some(version)).await? {
                Some(true) => Ok(None),
                _ => Ok(Some("AWSPENDING no longer logs in".to_owned())),
            }
        }
        _ => Ok(None),
    }
}

/// Whether the version at `stage` logs in: `None` when it has no usable value.
async fn logs_in<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    stage: Stage,
    version: Option<&str>,
) -> Result<Option<bool>, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let Some(secret) = read(examiner, arn, stage, version).await? else {
        return Ok(None);
    };
    Ok(Some(examiner.logs_in(&secret).await?.is_ok()))
}

/// The version at `stage`, parsed; `None` when it is absent or unusable.
async fn read<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    stage: Stage,
    version: Option<&str>,
) -> Result<Option<DbSecret>, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let scope = &examiner.scope;
    let text = scope
        .app
        .store
        .get_if_exists(arn, stage, version, &scope.ctx)
        .await?;
    Ok(text.and_then(|text| DbSecret::parse(arn, stage, &text).ok()))
}

/// Why the stuck version is not a credential a rotation of this secret could have written, as
/// setSecret would refuse it: another user than the current one (or, for alternating users, its
/// alternate), or another host or port. Promoting a hand-made version would otherwise hand its
/// credential the secret's name.
async fn foreign_pending<S, R, A>(
    examiner: &Examiner<'_, S, R, A>,
    arn: &str,
    version: &str,
) -> Result<Option<String>, Error>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    let (Some(current), Some(pending)) = (
        read(examiner, arn, Stage::Current, None).await?,
        read(examiner, arn, Stage::Pending, Some(version)).await?,
    ) else {
        return Ok(Some(
            "AWSCURRENT or AWSPENDING has no usable value".to_owned(),
        ));
    };
    let user_ok = pending.username() == current.username()
        || (Plan::strategy(&current, &examiner.scope.app.config) == Strategy::AlternatingUsers
            && (is_clone_of(pending.username(), current.username())
                || is_clone_of(current.username(), pending.username())));
    if !user_ok {
        return Ok(Some(format!(
            "AWSPENDING names user {}, neither AWSCURRENT's user {} nor its alternate, so no \
             rotation wrote it",
            pending.username(),
            current.username()
        )));
    }
    if pending.host() != current.host() || pending.port() != current.port() {
        return Ok(Some(format!(
            "AWSPENDING is for {}:{}, not AWSCURRENT's {}:{}, so no rotation wrote it",
            pending.host(),
            pending.port(),
            current.host(),
            current.port()
        )));
    }
    Ok(None)
}
