//! One secret examined, read-only, by the rotation's own domain ([`crate::rotation`]): its
//! rotation configuration and labels, its `AWSCURRENT` value and [`Plan`] (parsed and decided as
//! createSecret decides them), a stuck `AWSPENDING` version, the master secret located as
//! setSecret locates it and, with `--login`, the [`Preflight`] the configuration test runs and
//! which credential of a stuck rotation logs in. What it finds is what the next rotation would
//! meet, because it asks the same code.
//!
//! A failed Secrets Manager call on the secret itself, or running out of time, stops the
//! examination (`Err`): the secret cannot be judged. Everything that would make the next rotation
//! fail is a [`Problem`] instead, the master secret's calls included.

use std::time::SystemTime;

use tracing::warn;

use super::report::{Code, Problem};
use super::rotation;
use super::when::{age, utc};
use crate::credentials::DbSecret;
use crate::error::{Error, ShortfallKind};
use crate::protocol::Stage;
use crate::rds::RdsApi;
use crate::rotation::{Plan, Preflight, Scope};
use crate::rotators::{Rotator, Session};
use crate::secrets::{SecretInfo, SecretInventory, SecretStore};

/// What examining one secret needs.
pub(super) struct Examiner<'a, S, R, A> {
    pub(super) scope: Scope<'a, S, R, A>,
    pub(super) now: SystemTime,
    /// `--login`.
    pub(super) login: bool,
}

/// What an examination found.
#[derive(Debug)]
pub(super) struct Findings {
    /// In [`Code`] order.
    pub(super) problems: Vec<Problem>,
    /// The stuck `AWSPENDING` version, when there is one.
    pub(super) stuck: Option<Stuck>,
}

/// A stuck `AWSPENDING`, as a repair needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stuck {
    /// The version labelled `AWSPENDING`.
    pub(super) version: String,
    /// The version labelled `AWSCURRENT`, if any.
    pub(super) current_version: Option<String>,
    /// When the stuck version was created, when known.
    pub(super) created: Option<SystemTime>,
    /// With `--login`: whether `AWSCURRENT` logs in, and whether the stuck version does.
    pub(super) logins: Option<(bool, bool)>,
}

/// The stuck version's value.
enum Pending {
    /// None stored: the rotation stopped before createSecret.
    Empty,
    /// Stored but unusable: why, naming the field.
    Unusable(String),
    /// A credential.
    Usable(DbSecret),
}

/// `Err` for what stops an examination (running out of time); `Ok` holds an outcome to judge.
fn judge<T>(result: Result<T, Error>) -> Result<Result<T, Error>, Error> {
    match result {
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        other => Ok(other),
    }
}

/// The doctor's code for what the preflight found.
fn code_of(kind: ShortfallKind) -> Code {
    match kind {
        ShortfallKind::Secret => Code::InvalidSecret,
        ShortfallKind::Current => Code::CurrentLoginFailed,
        ShortfallKind::OwnPassword => Code::CannotChangePassword,
        ShortfallKind::Master => Code::MasterUnreadable,
        ShortfallKind::MasterPrivilege => Code::MasterLacksPrivilege,
        ShortfallKind::Clone => Code::CloneDrift,
        ShortfallKind::Deprecated => Code::DeprecatedPlugin,
    }
}

impl<S, R, A> Examiner<'_, S, R, A>
where
    S: SecretStore + SecretInventory,
    R: Rotator,
    A: RdsApi,
{
    /// Examines the secret `info` describes.
    pub(super) async fn examine(&self, info: &SecretInfo) -> Result<Findings, Error> {
        let mut problems = rotation::problems(info, self.now);
        let current = self.current(info, &mut problems).await?;
        let plan = match &current {
            Some(current) => self.plan(current, &mut problems),
            None => None,
        };
        let stuck = self.stuck(info).await?;
        let mut current_logs_in = None;
        match (&current, self.login) {
            (Some(current), true) => {
                let preflight = Preflight::run(&self.scope, current).await?;
                current_logs_in = Some(preflight.current.is_some());
                for shortfall in preflight.shortfalls {
                    // The plan's refusal is reported once, above.
                    if shortfall.kind != ShortfallKind::Secret || plan.is_some() {
                        problems.push(Problem::new(code_of(shortfall.kind), detail(&shortfall)));
                    }
                }
            }
            (Some(current), false) => {
                if let Some(Plan {
                    masterarn: Some(arn),
                    ..
                }) = &plan
                {
                    self.locate_master(current, arn, &mut problems).await?;
                }
            }
            (None, _) => {}
        }
        let stuck = match stuck {
            Some((mut found, pending)) => {
                let pending_login = match (self.login, &pending) {
                    (true, Pending::Usable(secret)) => Some(self.logs_in(secret).await?),
                    _ => None,
                };
                found.logins =
                    current_logs_in.map(|current| (current, matches!(pending_login, Some(Ok(())))));
                problems.push(stuck_problem(
                    &found,
                    &pending,
                    current_logs_in,
                    pending_login,
                    self.now,
                ));
                Some(found)
            }
            None => None,
        };
        problems.sort_by_key(|p| p.code);
        Ok(Findings { problems, stuck })
    }

    /// The `AWSCURRENT` value, parsed; an unusable one (or none) is `invalid-secret`.
    async fn current(
        &self,
        info: &SecretInfo,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<DbSecret>, Error> {
        if info.description.version_with(Stage::Current).is_none() {
            problems.push(invalid("no version is labelled AWSCURRENT".to_owned()));
            return Ok(None);
        }
        match self.scope.read(Stage::Current, None).await {
            Ok(current) => Ok(Some(current)),
            Err(Error::InvalidSecret { stage, problem, .. }) => {
                problems.push(invalid(format!("{stage}: {problem}")));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The plan, as createSecret decides it; a refusal is `invalid-secret`.
    fn plan(&self, current: &DbSecret, problems: &mut Vec<Problem>) -> Option<Plan> {
        match Plan::of(self.scope.secret_id(), current, &self.scope.app.config) {
            Ok(plan) => Some(plan),
            Err(Error::InvalidSecret { stage, problem, .. }) => {
                problems.push(invalid(format!("{stage}: {problem}")));
                None
            }
            Err(e) => {
                problems.push(invalid(e.to_string()));
                None
            }
        }
    }

    /// Without `--login`: the master secret, located as setSecret locates it (allowed, read,
    /// RDS-managed or on a host RDS proves); what would make setSecret fail is
    /// `master-unreadable`.
    async fn locate_master(
        &self,
        current: &DbSecret,
        masterarn: &str,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Error> {
        if let Err(e) = judge(self.scope.locate_master(current, masterarn).await)? {
            problems.push(Problem::new(
                Code::MasterUnreadable,
                format!(
                    "{e}; the next rotation fails at setSecret until masterarn names a usable \
                     master secret"
                ),
            ));
        }
        Ok(())
    }

    /// The stuck `AWSPENDING` version, if any, with its value and creation date.
    async fn stuck(&self, info: &SecretInfo) -> Result<Option<(Stuck, Pending)>, Error> {
        let labels = &info.description;
        let current_version = labels.version_with(Stage::Current);
        let Some(version) = labels
            .version_with(Stage::Pending)
            .filter(|v| Some(*v) != current_version)
        else {
            return Ok(None);
        };
        let pending = match self
            .scope
            .read_if_exists(Stage::Pending, Some(version))
            .await
        {
            Ok(None) => Pending::Empty,
            Ok(Some(secret)) => Pending::Usable(secret),
            Err(Error::InvalidSecret { problem, .. }) => Pending::Unusable(problem),
            Err(e) => return Err(e),
        };
        let ctx = &self.scope.ctx;
        let created = match self.scope.app.store.version_dates(&info.arn, ctx).await {
            Ok(dates) => dates.get(version).copied(),
            Err(e @ Error::DeadlineExceeded { .. }) => return Err(e),
            Err(e) => {
                warn!(secret_id = %info.arn, error = %e, "the versions' creation dates are unknown");
                None
            }
        };
        let stuck = Stuck {
            version: version.to_owned(),
            current_version: current_version.map(str::to_owned),
            created,
            logins: None,
        };
        Ok(Some((stuck, pending)))
    }

    /// Whether `secret` logs in (closing the session), or why not; `Err` only when time runs out.
    pub(super) async fn logs_in(&self, secret: &DbSecret) -> Result<Result<(), String>, Error> {
        let scope = &self.scope;
        let attempt = "login with pending secret";
        match judge(
            scope
                .app
                .rotators
                .connect(&secret.login(), attempt, &scope.ctx)
                .await,
        )? {
            Ok(session) => {
                session.close().await;
                Ok(Ok(()))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

fn invalid(detail: String) -> Problem {
    Problem::new(
        Code::InvalidSecret,
        format!("{detail}; the next rotation fails with InvalidSecret until it is fixed"),
    )
}

/// A preflight finding in words, with what to do.
fn detail(shortfall: &crate::error::Shortfall) -> String {
    let mut text = format!("{}: {}", shortfall.account, shortfall.missing);
    if let Some(hint) = &shortfall.hint {
        text.push_str(&format!("; {hint}"));
    }
    match shortfall.kind {
        ShortfallKind::Clone => {
            text.push_str("; see docs/deployment.md, \"Repairing a clone\"");
        }
        ShortfallKind::Deprecated => {}
        _ => text.push_str("; the next rotation fails at setSecret until this is fixed"),
    }
    text
}

/// The `stuck-pending` problem, in words: where the label is, since when, what the version
/// holds, and, with `--login`, which credential logs in.
fn stuck_problem(
    stuck: &Stuck,
    pending: &Pending,
    current_logs_in: Option<bool>,
    pending_login: Option<Result<(), String>>,
    now: SystemTime,
) -> Problem {
    let mut detail = format!(
        "AWSPENDING is on version {}, not on AWSCURRENT's ({}), so Secrets Manager refuses new \
         rotations",
        stuck.version,
        stuck.current_version.as_deref().unwrap_or("none")
    );
    match stuck.created {
        Some(created) => detail.push_str(&format!(
            "; the version was created {} ({} ago)",
            utc(created),
            age(created, now)
        )),
        None => detail.push_str("; its creation date is unknown"),
    }
    detail.push_str(&match pending {
        Pending::Empty => "; it holds no value (the rotation stopped before createSecret)".into(),
        Pending::Unusable(problem) => format!("; its value is unusable: {problem}"),
        Pending::Usable(secret) => {
            format!("; it holds a credential for user {}", secret.username())
        }
    });
    match current_logs_in {
        Some(current) => {
            let current = if current {
                "AWSCURRENT logs in"
            } else {
                "AWSCURRENT does not log in"
            };
            match &pending_login {
                Some(Ok(())) => detail.push_str(&format!("; {current}, AWSPENDING logs in")),
                Some(Err(why)) => {
                    detail.push_str(&format!("; {current}, AWSPENDING does not log in ({why})"))
                }
                None => detail.push_str(&format!("; {current}")),
            }
        }
        None => {
            detail.push_str("; --login tells which credential logs in and what --repair would do")
        }
    }
    Problem::new(Code::StuckPending, detail)
}
