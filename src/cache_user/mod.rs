//! ElastiCache and MemoryDB users (engines `elasticache` and `memorydb`), seen through what a
//! rotation needs from their APIs: describe one user, set its passwords.
//!
//! Both services refuse `ACL SETUSER` on their nodes: a user's passwords change only through the
//! control plane, ElastiCache's `ModifyUser` (`Passwords`, up to two) and MemoryDB's `UpdateUser`
//! (`AuthenticationMode` of type `password`, up to two passwords). Neither API ever returns a
//! password; `DescribeUsers` reports how many a user holds, and a status that is `modifying`
//! while a change reaches the nodes and `active` once it has.
//!
//! [`CacheUserApi`] speaks the domain ([`CacheUser`], "not found", "not ready"), so the logic
//! below runs against a fake in unit tests; [`SdkCacheUsers`] implements it with
//! `aws-sdk-elasticache` and `aws-sdk-memorydb`, each client built on its first call and every
//! call under the step's deadline, retried like Secrets Manager's (`crate::aws::retry`).
//!
//! What a rotation calls, each under the step's [`StepContext`]:
//!
//! - [`CacheUserSecret::parse`]: the secret's shape (`user_arn`, `username`, `password`, optional
//!   `engine`), the ARN's account and Region checked against the function's own ([`Home`]);
//!   [`CacheUserSecret::check_user`]: the secret's `username` is the name the API reports;
//!   [`CacheUserSecret::check_same_user`]: pending names the user current names;
//! - [`wait_active`]: waits, with backoff, for the user to be `active`, within what is left of
//!   the invocation; [`DeadlineExceeded`](Error::DeadlineExceeded) names the user and its last
//!   status when time runs out;
//! - [`set_passwords`]: the user's passwords become exactly `[pending, current]` (dual password)
//!   or `[pending]` (single user), unless the data plane has shown that they already are;
//! - [`preflight`]: read-only findings (the user exists, its authentication, its status, how many
//!   passwords it holds, a change stuck in `modifying`), for the configuration test and the
//!   doctor.
//!
//! # Layout
//!
//! - `arn`: [`UserArn`] and [`Home`], the account and Region the function acts in;
//! - `secret`: [`CacheUserSecret`], the secret JSON (unknown keys kept);
//! - `sdk`: [`SdkCacheUsers`], the two SDK clients, built on first use, each behind the cargo
//!   feature of its engine's name (on by default);
//! - `wait`: [`wait_active`] and its pacing;
//! - `passwords`: [`PasswordSet`], the service's password rules and [`set_passwords`];
//! - `preflight`: [`preflight`] and its [`Finding`]s.

mod arn;
mod passwords;
mod preflight;
mod sdk;
mod secret;
mod wait;

use std::fmt;
use std::future::Future;

#[cfg(any(feature = "elasticache", feature = "memorydb", test))]
use crate::aws::retry::{AttemptError, Call, CallError, RetryPolicy, call};
use crate::deadline::StepContext;
use crate::error::{Error, UserApiFailure};

pub use arn::{Home, UserArn};
pub use passwords::{Holding, PasswordSet, SetOutcome, password_problem, set_passwords};
pub use preflight::{Finding, Preflight, preflight};
pub use sdk::SdkCacheUsers;
pub use secret::CacheUserSecret;
pub use wait::{WaitPolicy, wait_active, wait_active_with};

/// The AWS service that manages a user: the secret's engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Amazon ElastiCache (Valkey and Redis OSS users), engine `elasticache`.
    ElastiCache,
    /// Amazon MemoryDB, engine `memorydb`.
    MemoryDb,
}

impl Service {
    /// The most passwords a user may hold, on either service.
    pub const MAX_PASSWORDS: usize = 2;

    /// The secret's `engine` value.
    pub fn engine(self) -> &'static str {
        match self {
            Service::ElastiCache => "elasticache",
            Service::MemoryDb => "memorydb",
        }
    }

    /// The service as messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Service::ElastiCache => "ElastiCache",
            Service::MemoryDb => "MemoryDB",
        }
    }

    /// Whether this build has the service's client: its cargo feature (`elasticache`,
    /// `memorydb`), on by default.
    pub const fn in_this_build(self) -> bool {
        match self {
            Service::ElastiCache => cfg!(feature = "elasticache"),
            Service::MemoryDb => cfg!(feature = "memorydb"),
        }
    }

    /// The API operation that sets a user's passwords.
    pub fn modify_operation(self) -> &'static str {
        match self {
            Service::ElastiCache => "ModifyUser",
            Service::MemoryDb => "UpdateUser",
        }
    }

    /// The service's error, naming the rotated secret, the operation and the user.
    pub(crate) fn error(
        self,
        ctx: &StepContext<'_>,
        operation: &'static str,
        user: &UserArn,
        code: Option<String>,
        detail: String,
    ) -> Error {
        let failure = Box::new(UserApiFailure {
            secret_id: ctx.secret_id.to_owned(),
            service: self.name(),
            operation,
            user: user.as_str().to_owned(),
            code,
            detail,
        });
        match self {
            Service::ElastiCache => Error::ElastiCache(failure),
            Service::MemoryDb => Error::MemoryDb(failure),
        }
    }

    /// The service's "no such user" (`UserNotFound`), for an operation that needed one.
    pub(crate) fn user_not_found(
        self,
        ctx: &StepContext<'_>,
        operation: &'static str,
        user: &UserArn,
    ) -> Error {
        let code = match self {
            Service::ElastiCache => "UserNotFound",
            Service::MemoryDb => "UserNotFoundFault",
        };
        self.error(
            ctx,
            operation,
            user,
            Some(code.to_owned()),
            format!("the {self} user that user_arn names does not exist"),
        )
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A user's status, as `DescribeUsers` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserStatus {
    /// `active`: the user's settings are on every node, and the API accepts a change.
    Active,
    /// `modifying`: a change is on its way to the nodes; the API refuses another.
    Modifying,
    /// `creating`.
    Creating,
    /// `deleting`.
    Deleting,
    /// Anything else the service may report, verbatim (empty when it reported none).
    Other(String),
}

impl UserStatus {
    /// The status as the service spells it.
    pub fn parse(value: &str) -> Self {
        match value {
            "active" => UserStatus::Active,
            "modifying" => UserStatus::Modifying,
            "creating" => UserStatus::Creating,
            "deleting" => UserStatus::Deleting,
            other => UserStatus::Other(other.to_owned()),
        }
    }

    /// The service's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Modifying => "modifying",
            UserStatus::Creating => "creating",
            UserStatus::Deleting => "deleting",
            UserStatus::Other(other) => other,
        }
    }
}

impl fmt::Display for UserStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserStatus::Other(other) if other.is_empty() => f.write_str("(none reported)"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// How a user authenticates: `Authentication.Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthType {
    /// `password`: the user holds one or two passwords, the only kind a rotation can change.
    Password,
    /// `no-password`: the user needs no password.
    NoPassword,
    /// `iam`: IAM authentication tokens, no password.
    Iam,
    /// Anything else, verbatim (empty when the service reported none).
    Other(String),
}

impl AuthType {
    /// The type as the service spells it.
    pub fn parse(value: &str) -> Self {
        match value {
            "password" => AuthType::Password,
            "no-password" => AuthType::NoPassword,
            "iam" => AuthType::Iam,
            other => AuthType::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for AuthType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthType::Password => f.write_str("password"),
            AuthType::NoPassword => f.write_str("no-password"),
            AuthType::Iam => f.write_str("iam"),
            AuthType::Other(other) if other.is_empty() => f.write_str("(none reported)"),
            AuthType::Other(other) => f.write_str(other),
        }
    }
}

/// A user, as `DescribeUsers` describes it. Holds no password: neither API returns one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheUser {
    /// The service that manages it.
    pub service: Service,
    /// The name clients log in with (`UserName` in ElastiCache, `Name` in MemoryDB).
    pub name: String,
    /// The identifier its ARN ends with: ElastiCache's `UserId`, MemoryDB's name.
    pub id: String,
    /// `ARN`, when the service returned it.
    pub arn: Option<String>,
    /// `Status`.
    pub status: UserStatus,
    /// `Authentication.Type`.
    pub authentication: AuthType,
    /// `Authentication.PasswordCount`, when reported.
    pub password_count: Option<u32>,
    /// ElastiCache's `Engine` (`redis`, `valkey`); MemoryDB reports none.
    pub engine: Option<String>,
    /// ElastiCache's `UserGroupIds`, MemoryDB's `ACLNames`: where the user is in use.
    pub groups: Vec<String>,
}

/// How a password change ended, short of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The service accepted it: the user is now `modifying` on its way to the new passwords.
    Accepted,
    /// The service refused it because the user is not `active` (`InvalidUserState`): another
    /// change is under way. Nothing changed.
    NotReady,
    /// No such user (`UserNotFound`). Nothing changed.
    NotFound,
}

/// The ElastiCache and MemoryDB user operations a rotation uses. Every call runs within `ctx`'s
/// deadline, retried on throttling and transient failures, and counts its retries in `ctx`'s
/// tally; any other failure is [`Error::ElastiCache`] or [`Error::MemoryDb`] naming the
/// operation and the user, running out of time [`Error::DeadlineExceeded`] naming the call.
///
/// The futures need not be `Send`: the Lambda runtime polls the handler on its own task.
pub trait CacheUserApi {
    /// `DescribeUsers` of the user `user` names: ElastiCache by `UserId`, MemoryDB by
    /// `UserName`. `Ok(None)`: no such user.
    fn describe(
        &self,
        user: &UserArn,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Option<CacheUser>, Error>>;

    /// Sets the user's passwords to exactly `passwords`, nothing else: ElastiCache `ModifyUser`
    /// with `Passwords`, MemoryDB `UpdateUser` with `AuthenticationMode` `password`. The access
    /// string is left as it is.
    fn set_passwords(
        &self,
        user: &UserArn,
        passwords: &PasswordSet,
        ctx: &StepContext<'_>,
    ) -> impl Future<Output = Result<Change, Error>>;
}

/// Runs one user API call as [`call`] does, with the default [`RetryPolicy`], and turns its
/// failure into the service's error (or [`Error::DeadlineExceeded`]). `mask` lists values that
/// must not reach the error even if the service were to quote them (the passwords being set).
/// The SDK clients' calls and the fake's go through it.
#[cfg(any(feature = "elasticache", feature = "memorydb", test))]
pub(crate) async fn api_call<T, F, Fut>(
    ctx: &StepContext<'_>,
    user: &UserArn,
    operation: &'static str,
    mask: &[&str],
    attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let service = user.service();
    let what = Call {
        service: service.name(),
        operation,
        subject: user.as_str(),
    };
    call(what, &RetryPolicy::default(), ctx, attempt)
        .await
        .map_err(|failure| match failure {
            CallError::Deadline(e) => e,
            CallError::Failed { code, detail } => {
                service.error(ctx, operation, user, code, masked(detail, mask))
            }
        })
}

/// `text` with every non-empty value of `mask` replaced by `<redacted>`.
#[cfg(any(feature = "elasticache", feature = "memorydb", test))]
pub(crate) fn masked(text: String, mask: &[&str]) -> String {
    mask.iter()
        .filter(|m| !m.is_empty())
        .fold(text, |text, m| text.replace(m, "<redacted>"))
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
