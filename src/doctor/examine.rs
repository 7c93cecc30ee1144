//! One secret examined, read-only: its rotation configuration and labels, its `AWSCURRENT` value
//! (parsed as the function parses it), a stuck `AWSPENDING` version, the master secret of
//! alternating users and, with `--login`, which credentials log in and whether the alternate
//! account would pass the next rotation's privilege check.
//!
//! A failed Secrets Manager call on the secret itself, or running out of time, stops the
//! examination (`Err`): the secret cannot be judged. Everything that would make the next rotation
//! fail is a [`Problem`] instead, the master secret's calls included.

use std::time::SystemTime;

use tracing::warn;

use super::probe::Probe;
use super::report::{Code, Problem};
use super::rotation;
use super::when::{age, utc};
use crate::config::Config;
use crate::credentials::DbSecret;
use crate::deadline::StepContext;
use crate::engine::clone_name;
use crate::error::{CloneFindings, Error};
use crate::protocol::{Stage, Strategy};
use crate::rotators::Account;
use crate::secrets::{SecretInfo, SecretInventory, SecretStore};

/// What examining one secret needs.
pub(super) struct Examiner<'a, S, R> {
    pub(super) store: &'a S,
    pub(super) rotator: &'a R,
    pub(super) config: &'a Config,
    pub(super) ctx: &'a StepContext<'a>,
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

/// What logging in told.
struct Logins {
    /// The account `AWSCURRENT` logged in as.
    current: Option<Account>,
    /// Whether the stuck version logged in, or why not (`None`: not tried).
    pending: Option<Result<(), String>>,
}

/// `Err` for what stops an examination (running out of time); `Ok` holds an outcome to judge.
fn judge<T>(result: Result<T, Error>) -> Result<Result<T, Error>, Error> {
    match result {
        Err(e @ Error::DeadlineExceeded { .. }) => Err(e),
        other => Ok(other),
    }
}

impl<S, R> Examiner<'_, S, R>
where
    S: SecretStore + SecretInventory,
    R: Probe,
{
    /// Examines the secret `info` describes.
    pub(super) async fn examine(&self, info: &SecretInfo) -> Result<Findings, Error> {
        let mut problems = rotation::problems(info, self.now);
        let current = self.current(info, &mut problems).await?;
        let master = match &current {
            Some(current) => self.master(current, &mut problems).await?,
            None => None,
        };
        let stuck = self.stuck(info).await?;
        let logins = match self.login {
            true => {
                let pending = stuck.as_ref().map(|(_, pending)| pending);
                Some(
                    self.logins(current.as_ref(), pending, &mut problems)
                        .await?,
                )
            }
            false => None,
        };
        if let (Some(current), Some(master), Some(Some(account))) =
            (&current, &master, logins.as_ref().map(|l| &l.current))
        {
            self.clone_drift(current, master, account, &mut problems)
                .await?;
        }
        let stuck = stuck.map(|(mut found, pending)| {
            found.logins = logins
                .as_ref()
                .map(|l| (l.current.is_some(), matches!(l.pending, Some(Ok(())))));
            problems.push(stuck_problem(&found, &pending, logins.as_ref(), self.now));
            found
        });
        problems.sort_by_key(|p| p.code);
        Ok(Findings { problems, stuck })
    }

    /// The `AWSCURRENT` value, parsed; an unusable one (or none) is `invalid-secret`.
    async fn current(
        &self,
        info: &SecretInfo,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<DbSecret>, Error> {
        let invalid = |problems: &mut Vec<Problem>, detail: String| {
            problems.push(Problem::new(
                Code::InvalidSecret,
                format!("{detail}; the next rotation fails with InvalidSecret until it is fixed"),
            ));
        };
        if info.description.version_with(Stage::Current).is_none() {
            invalid(problems, "no version is labelled AWSCURRENT".to_owned());
            return Ok(None);
        }
        let read = self
            .store
            .get(&info.arn, Stage::Current, None, self.ctx)
            .await
            .and_then(|text| DbSecret::parse(&info.arn, Stage::Current, &text));
        let current = match read {
            Ok(current) => current,
            Err(Error::InvalidSecret { stage, problem, .. }) => {
                invalid(problems, format!("{stage}: {problem}"));
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if self.strategy(&current) == Strategy::AlternatingUsers {
            if current.masterarn().is_none() {
                invalid(
                    problems,
                    "AWSCURRENT: masterarn key is missing from secret JSON (required by the \
                     alternating-users strategy)"
                        .to_owned(),
                );
            }
            let limit = current
                .engine()
                .username_limit(self.config.mysql_username_limit);
            if let Err(limit) = clone_name(current.username(), limit) {
                invalid(
                    problems,
                    format!(
                        "AWSCURRENT: unable to clone user, username length with _clone appended \
                         would exceed {limit}"
                    ),
                );
            }
        }
        Ok(Some(current))
    }

    pub(super) fn strategy(&self, current: &DbSecret) -> Strategy {
        current.rotation_strategy().unwrap_or(self.config.strategy)
    }

    /// Alternating users: the master secret, read and checked as setSecret would before logging
    /// in with it; what would make setSecret fail is `master-unreadable`.
    async fn master(
        &self,
        current: &DbSecret,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<DbSecret>, Error> {
        let Some(arn) = current.masterarn() else {
            return Ok(None);
        };
        if self.strategy(current) != Strategy::AlternatingUsers {
            return Ok(None);
        }
        if let Some(allowed) = &self.config.master_secret_arns {
            if !allowed.iter().any(|a| a == arn) {
                problems.push(Problem::new(
                    Code::MasterUnreadable,
                    format!(
                        "masterarn {arn} is not one of MASTER_SECRET_ARNS, so the next rotation \
                         refuses it at setSecret"
                    ),
                ));
                return Ok(None);
            }
        }
        let unreadable = |problems: &mut Vec<Problem>, detail: String| {
            problems.push(Problem::new(
                Code::MasterUnreadable,
                format!(
                    "{detail}; the next rotation fails at setSecret until masterarn names a \
                     usable master secret"
                ),
            ));
        };
        let read = match self.store.get(arn, Stage::Current, None, self.ctx).await {
            Ok(text) => DbSecret::parse_with_engine(arn, Stage::Current, &text, current.engine()),
            Err(e) => Err(e),
        };
        let master = match judge(read)? {
            Ok(master) => master,
            Err(e) => {
                unreadable(problems, e.to_string());
                return Ok(None);
            }
        };
        if master.engine().family() != current.engine().family() {
            unreadable(
                problems,
                format!(
                    "master secret {arn}: engine {} is not of the same family as {}",
                    master.engine(),
                    current.engine()
                ),
            );
            return Ok(None);
        }
        if !master.same_endpoint(current) {
            unreadable(
                problems,
                format!(
                    "master secret {arn} is for {}:{}, not the secret's {}:{}",
                    master.host(),
                    master.port(),
                    current.host(),
                    current.port()
                ),
            );
            return Ok(None);
        }
        Ok(Some(master))
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
        let read = self
            .store
            .get_if_exists(&info.arn, Stage::Pending, Some(version), self.ctx)
            .await
            .and_then(|text| {
                text.map(|text| DbSecret::parse(&info.arn, Stage::Pending, &text))
                    .transpose()
            });
        let pending = match read {
            Ok(None) => Pending::Empty,
            Ok(Some(secret)) => Pending::Usable(secret),
            Err(Error::InvalidSecret { problem, .. }) => Pending::Unusable(problem),
            Err(e) => return Err(e),
        };
        let created = match self.store.version_dates(&info.arn, self.ctx).await {
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

    /// Logs in with `AWSCURRENT` (a failure is `current-login-failed`) and with the stuck
    /// version's credential, closing both sessions.
    async fn logins(
        &self,
        current: Option<&DbSecret>,
        pending: Option<&Pending>,
        problems: &mut Vec<Problem>,
    ) -> Result<Logins, Error> {
        let current = match current {
            Some(secret) => Some((
                secret,
                self.login(secret, "login with current secret").await?,
            )),
            None => None,
        };
        // A version without a usable credential is not tried: its value says why.
        let pending = match pending {
            Some(Pending::Usable(secret)) => Some(
                self.login(secret, "login with pending secret")
                    .await?
                    .map(drop)
                    .map_err(|e| e.to_string()),
            ),
            Some(Pending::Empty | Pending::Unusable(_)) | None => None,
        };
        let account = match current {
            Some((_, Ok(account))) => Some(account),
            Some((secret, Err(e))) => {
                let why = if matches!(pending, Some(Ok(()))) {
                    "the stuck rotation already gave the database AWSPENDING's password"
                } else {
                    "its password was changed outside Secrets Manager, or the network or TLS fails"
                };
                problems.push(Problem::new(
                    Code::CurrentLoginFailed,
                    format!(
                        "AWSCURRENT (user {} at {}:{}) does not log in: {e}; {why}",
                        secret.username(),
                        secret.host(),
                        secret.port()
                    ),
                ));
                None
            }
            None => None,
        };
        Ok(Logins {
            current: account,
            pending,
        })
    }

    /// Logs in with `secret` and closes the session: `Ok(Ok(account))`, or `Ok(Err(why))` when
    /// the login fails; `Err` only when time runs out.
    pub(super) async fn login(
        &self,
        secret: &DbSecret,
        attempt: &str,
    ) -> Result<Result<Account, Error>, Error> {
        match judge(self.rotator.connect(secret, attempt, self.ctx).await)? {
            Ok(session) => {
                let account = self.rotator.account(&session);
                self.rotator.close(session).await;
                Ok(Ok(account))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    /// Alternating users: logs in as the master and asks whether the next rotation's privilege
    /// check would pass for the account it hands over.
    async fn clone_drift(
        &self,
        current: &DbSecret,
        master: &DbSecret,
        account: &Account,
        problems: &mut Vec<Problem>,
    ) -> Result<(), Error> {
        let limit = current
            .engine()
            .username_limit(self.config.mysql_username_limit);
        let Ok(other) = clone_name(current.username(), limit) else {
            return Ok(()); // reported as invalid-secret
        };
        let connected = self
            .rotator
            .connect(master, "login with master secret", self.ctx)
            .await;
        let mut session = match judge(connected)? {
            Ok(session) => session,
            Err(e) => {
                problems.push(Problem::new(
                    Code::MasterUnreadable,
                    format!(
                        "master secret {} does not log in: {e}; the next rotation fails at \
                         setSecret",
                        current.masterarn().unwrap_or("?")
                    ),
                ));
                return Ok(());
            }
        };
        let findings = self
            .rotator
            .audit_clone(&mut session, account, &other, self.ctx)
            .await;
        self.rotator.close(session).await;
        let detail = match judge(findings)? {
            Ok(findings) if findings.is_empty() => return Ok(()),
            Ok(findings) => drift_detail(&other, account, &findings),
            Err(e) => format!(
                "the accounts could not be compared ({e}); the next rotation runs the same check"
            ),
        };
        problems.push(Problem::new(Code::CloneDrift, detail));
        Ok(())
    }
}

/// `user@host` for MySQL accounts, `user` for PostgreSQL roles.
fn account_name(user: &str, account: &Account) -> String {
    match &account.host {
        Some(host) => format!("{user}@{host}"),
        None => user.to_owned(),
    }
}

fn drift_detail(other: &str, current: &Account, findings: &CloneFindings) -> String {
    format!(
        "the next rotation would refuse to hand over {}: {}; see docs/deployment.md, \
         \"Repairing a clone\"",
        account_name(other, current),
        findings.describe(&account_name(&current.user, current)),
    )
}

/// The `stuck-pending` problem, in words: where the label is, since when, what the version
/// holds, and, with `--login`, which credential logs in.
fn stuck_problem(
    stuck: &Stuck,
    pending: &Pending,
    logins: Option<&Logins>,
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
    match logins {
        Some(logins) => {
            let current = if logins.current.is_some() {
                "AWSCURRENT logs in"
            } else {
                "AWSCURRENT does not log in"
            };
            match &logins.pending {
                Some(Ok(())) => detail.push_str(&format!("; {current}, AWSPENDING logs in")),
                Some(Err(why)) => {
                    detail.push_str(&format!("; {current}, AWSPENDING does not log in ({why})"))
                }
                None => {}
            }
        }
        None => {
            detail.push_str("; --login tells which credential logs in and what --repair would do")
        }
    }
    Problem::new(Code::StuckPending, detail)
}
