//! What the next rotation of a cache user needs, checked read-only (docs/protocol.md 5.15): for
//! the configuration test (`testSecret` alone) and the doctor. One `DescribeUsers`; nothing is
//! written. The identity checks are the ones setSecret runs ([`CacheUserSecret::check_user`]).

use std::time::Duration;

use super::{AuthType, CacheUser, CacheUserApi, CacheUserSecret, UserStatus};
use crate::deadline::StepContext;
use crate::error::Error;
use crate::protocol::Stage;

/// One thing that stands in the way of rotating a user: identifiers and counts, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check that found it: `user-exists`, `username`, `authentication`, `status`,
    /// `stuck-modifying` or `password-count`.
    pub check: &'static str,
    /// The user it is about: `ElastiCache user <id> (<ARN>)`.
    pub account: String,
    /// What is missing or wrong.
    pub missing: String,
    /// What to do about it.
    pub hint: String,
}

/// The preflight's answer: the user as described (when it exists) and what stands in the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// The user, when it exists.
    pub user: Option<CacheUser>,
    /// Empty when nothing stands in the way.
    pub findings: Vec<Finding>,
}

impl Preflight {
    /// Whether nothing stands in the way.
    pub fn is_ready(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks, read-only, that `secret` (read at `stage`) can be rotated: the user its ARN names
/// exists, carries the secret's `username` and authenticates by password; it is not being
/// deleted; it holds one or two passwords; and it has not been `modifying` (or `creating`) for
/// longer than `window`. `modifying_for` is how long the caller knows the user to have been
/// changing at least (for instance the age of the pending version whose setSecret sent the
/// change); without it a `modifying` user is not reported, since the API does not say since when.
///
/// `Err` only when the user could not be described (an API failure, or the deadline).
pub async fn preflight<A: CacheUserApi>(
    api: &A,
    secret: &CacheUserSecret,
    stage: Stage,
    window: Duration,
    modifying_for: Option<Duration>,
    ctx: &StepContext<'_>,
) -> Result<Preflight, Error> {
    let arn = secret.user();
    let service = arn.service();
    let account = format!("{service} user {} ({arn})", arn.id());
    let finding = |check, missing: String, hint: &str| Finding {
        check,
        account: account.clone(),
        missing,
        hint: hint.to_owned(),
    };
    let Some(user) = api.describe(arn, ctx).await? else {
        return Ok(Preflight {
            user: None,
            findings: vec![finding(
                "user-exists",
                format!("the {service} user that user_arn names does not exist"),
                "create the user, or correct user_arn in the secret",
            )],
        });
    };
    let mut findings = Vec::new();
    match secret.check_user(&user, stage, ctx) {
        Ok(()) => {}
        Err(e @ Error::IdentityMismatch(_)) => findings.push(finding(
            "username",
            e.to_string(),
            "the secret's username must be the user's name exactly as the service reports it",
        )),
        Err(e) => findings.push(finding(
            "authentication",
            e.to_string(),
            "only users with password authentication can be rotated",
        )),
    }
    let checks = [
        status_problem(&user, window, modifying_for),
        password_count_problem(&user),
    ];
    for (check, missing, hint) in checks.into_iter().flatten() {
        findings.push(finding(check, missing, hint));
    }
    Ok(Preflight {
        user: Some(user),
        findings,
    })
}

/// A problem found: the check's name, what is wrong, what to do.
type Problem = (&'static str, String, &'static str);

/// What the user's status says of the next rotation: nothing while it is `active`, or
/// `modifying` (or `creating`) for no longer than `window` as far as the caller knows.
fn status_problem(
    user: &CacheUser,
    window: Duration,
    modifying_for: Option<Duration>,
) -> Option<Problem> {
    match &user.status {
        UserStatus::Active => None,
        UserStatus::Modifying | UserStatus::Creating => {
            let age = modifying_for.filter(|age| *age > window)?;
            Some((
                "stuck-modifying",
                format!(
                    "the user has been {} for at least {} minutes, longer than the {} minutes \
                     allowed",
                    user.status,
                    age.as_secs() / 60,
                    window.as_secs() / 60
                ),
                "look at the service's events for the user and its user groups (ACLs); the \
                 rotation resumes by itself once the user is active",
            ))
        }
        UserStatus::Deleting => Some((
            "status",
            "the user is being deleted".to_owned(),
            "point user_arn at the user that replaces it, or stop rotating this secret",
        )),
        UserStatus::Other(_) => Some((
            "status",
            format!("the user's status is {}, not active", user.status),
            "wait for the user to become active",
        )),
    }
}

/// A password user must hold one or two passwords: none, and the secret's cannot log in; more
/// than two, and the service's state is not what rotation expects.
fn password_count_problem(user: &CacheUser) -> Option<Problem> {
    match user
        .password_count
        .filter(|_| user.authentication == AuthType::Password)
    {
        Some(1 | 2) | None => None,
        Some(0) => Some((
            "password-count",
            "the user holds no password, so the secret's password cannot log in".to_owned(),
            "set the secret's current password on the user, then rotate",
        )),
        Some(n) => Some((
            "password-count",
            format!("the service reports {n} passwords, more than the two it allows"),
            "check the user with the service's console or CLI",
        )),
    }
}
