//! The preflight (docs/protocol.md 5.15): everything the next rotation's setSecret would check or
//! need before it writes, evaluated read-only: the plan (strategy served, `masterarn`, the clone's
//! name), the current login, the master resolved and logged in as setSecret would, the privilege
//! to make the change, and the privilege invariant for an existing clone. It writes nothing, to
//! the database or to Secrets Manager.
//!
//! It runs on the configuration test (`testSecret` on a copy of the current value), in the
//! doctor's `--login` audit and on demand (an event `{"Command": "preflight"}`): one evaluation,
//! so they never disagree.

use tracing::warn;

use super::{Plan, Scope, use_then_close};
use crate::credentials::DbSecret;
use crate::engine::Method;
use crate::error::{Error, Shortfall, ShortfallKind};
use crate::rds::RdsApi;
use crate::rotators::{
    Account, CloneManagement, DualMaster, DualOwn, OwnPassword, Rotator, Session,
};
use crate::secrets::SecretStore;

/// What the preflight found.
#[derive(Debug, Default)]
pub struct Preflight {
    /// The account current logged in as; `None` when it did not.
    pub current: Option<Account>,
    /// Every reason the next rotation would fail, and what is deprecated, in the order found.
    pub shortfalls: Vec<Shortfall>,
}

impl Preflight {
    /// Evaluates `current`'s next rotation. `Err` only for what stops the evaluation itself:
    /// running out of time, a Secrets Manager failure on the secret.
    pub async fn run<S, R, A>(scope: &Scope<'_, S, R, A>, current: &DbSecret) -> Result<Self, Error>
    where
        S: SecretStore,
        R: Rotator,
        A: RdsApi,
    {
        let mut found = Preflight::default();
        let login = current.login();
        let failed = |why: String| Shortfall {
            kind: ShortfallKind::Current,
            account: format!("{}@{}:{}", login.username(), login.host(), login.port()),
            missing: format!("a working login: AWSCURRENT does not log in ({why})"),
            hint: None,
        };
        let mut session = match judged_one(scope.login(&login, "login with current secret").await)?
        {
            Ok(Some(session)) => session,
            Ok(None) => {
                found
                    .shortfalls
                    .push(failed("the server refuses its password".to_owned()));
                return Ok(found);
            }
            Err(e) => {
                found.shortfalls.push(failed(e.to_string()));
                return Ok(found);
            }
        };
        let account = session.account();
        found.current = Some(account.clone());
        let plan = match Plan::of(scope.secret_id(), current, &scope.app.config) {
            Ok(plan) => plan,
            Err(Error::InvalidSecret { problem, .. }) => {
                session.close().await;
                found.shortfalls.push(Shortfall {
                    kind: ShortfallKind::Secret,
                    account: scope.secret_id().to_owned(),
                    missing: problem,
                    hint: None,
                });
                return Ok(found);
            }
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        };
        let own = match plan.method {
            Method::OwnPassword => session.own_password_shortfalls(&scope.ctx).await,
            Method::DualOwn => session.dual_own_shortfalls(&scope.ctx).await,
            Method::MasterClone | Method::DualMaster => Ok(Vec::new()),
        };
        session.close().await;
        found
            .shortfalls
            .extend(judged(ShortfallKind::OwnPassword, own)?);
        if plan.method.needs_master() {
            found
                .shortfalls
                .extend(master_shortfalls(scope, &plan, current, &account).await?);
        }
        Ok(found)
    }

    /// The configuration test's answer: `Err(PreflightFailed)` when anything found would stop
    /// the next rotation; what is only deprecated is logged.
    pub fn into_result(self, secret_id: &str) -> Result<(), Error> {
        let (blocking, advice): (Vec<_>, Vec<_>) =
            self.shortfalls.into_iter().partition(|s| s.kind.blocks());
        for shortfall in advice {
            warn!(account = %shortfall.account, detail = %shortfall, "deprecated, still working");
        }
        if blocking.is_empty() {
            return Ok(());
        }
        Err(Error::PreflightFailed {
            secret_id: secret_id.to_owned(),
            shortfalls: blocking,
        })
    }
}

/// What the master path would fail on: the master secret (not allowed, unreadable, elsewhere,
/// not logging in), what it may not do, and the invariant for an existing clone.
async fn master_shortfalls<S, R, A>(
    scope: &Scope<'_, S, R, A>,
    plan: &Plan,
    current: &DbSecret,
    account: &Account,
) -> Result<Vec<Shortfall>, Error>
where
    S: SecretStore,
    R: Rotator,
    A: RdsApi,
{
    let masterarn = plan.masterarn.as_deref().unwrap_or_default();
    let unusable = |e: Error| Shortfall {
        kind: ShortfallKind::Master,
        account: masterarn.to_owned(),
        missing: e.to_string(),
        hint: None,
    };
    let master = match judged_one(scope.master(current, masterarn).await)? {
        Ok(master) => master,
        Err(e) => return Ok(vec![unusable(e)]),
    };
    let session = match judged_one(scope.master_session(&master).await)? {
        Ok(session) => session,
        Err(e) => return Ok(vec![unusable(e)]),
    };
    let pending_user = plan.pending_user(current).to_owned();
    let ctx = &scope.ctx;
    use_then_close(session, async |session| {
        if plan.method == Method::DualMaster {
            return judged(
                ShortfallKind::MasterPrivilege,
                session
                    .dual_master_shortfalls(account, current.password(), ctx)
                    .await,
            );
        }
        let mut found = judged(
            ShortfallKind::MasterPrivilege,
            session.master_shortfalls(account, &pending_user, ctx).await,
        )?;
        let findings = match judged_one(session.audit_clone(account, &pending_user, ctx).await)? {
            Ok(findings) => findings,
            Err(e) => return Ok(vec![unusable(e)]),
        };
        if !findings.is_empty() {
            found.push(Shortfall {
                kind: ShortfallKind::Clone,
                account: pending_user.clone(),
                missing: findings.describe(&account.user),
                hint: None,
            });
        }
        Ok(found)
    })
    .await
}

/// A check's shortfalls; a check that could not run becomes a finding of `kind`, except running
/// out of time, which stops the evaluation.
fn judged(
    kind: ShortfallKind,
    result: Result<Vec<Shortfall>, Error>,
) -> Result<Vec<Shortfall>, Error> {
    match result {
        Ok(found) => Ok(found),
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        Err(e) => Ok(vec![Shortfall {
            kind,
            account: String::new(),
            missing: format!("the check could not run: {e}"),
            hint: None,
        }]),
    }
}

/// `Err` for running out of time; `Ok` holds the outcome to judge.
fn judged_one<T>(result: Result<T, Error>) -> Result<Result<T, Error>, Error> {
    match result {
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        other => Ok(other),
    }
}
