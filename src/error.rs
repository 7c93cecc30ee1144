//! The crate's one error type and its mapping to Lambda `errorType` names.
//!
//! Variants carry identifiers (secret id, token, step, field, user and host names), never values: no
//! password, no secret JSON, no SQL containing a password, no `RotationToken`. `Debug` is derived
//! because every field is safe to print; the Lambda runtime logs handler errors with `{:?}`.

use std::fmt;

use lambda_runtime::Diagnostic;

use crate::engine::Engine;
use crate::protocol::{Stage, Step};

/// Details of [`Error::IdentityMismatch`], boxed to keep `Result<_, Error>` small.
#[derive(Debug)]
pub struct Mismatch {
    /// Secret ARN or name.
    pub secret_id: String,
    /// The step that refused.
    pub step: Step,
    /// `user` or `host`.
    pub what: &'static str,
    /// The value that would be acted on.
    pub found: String,
    /// Whose value it should have equalled (`current user`, `previous host`, …).
    pub expected_role: &'static str,
    /// The expected value.
    pub expected: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret {} ({}): attempting to modify {} {} other than {} {}",
            self.secret_id, self.step, self.what, self.found, self.expected_role, self.expected
        )
    }
}

/// What stands in the way of handing an alternate user over (docs/protocol.md 5.12): privilege,
/// role, attribute, object and account names, never values. Empty when the handover is safe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneFindings {
    /// What the alternate user may do and the current user may not.
    pub excess: Vec<String>,
    /// What the current user may do and an existing alternate user may not: the function makes
    /// the alternate user with all of it, so this one is someone else's (or the current user
    /// gained it since), and giving it the current user's rights would give them to whoever
    /// controls it.
    pub missing: Vec<String>,
    /// Who else can act as the alternate user or take it over: members, administrators,
    /// proxies, objects running with its rights.
    pub controllers: Vec<String>,
}

/// How many items a list in an error names before it counts the rest.
const LISTED: usize = 8;

/// `items`, at most [`LISTED`] of them, joined by `; `.
fn listed(items: &[String]) -> String {
    let mut text = items
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > LISTED {
        text.push_str(&format!("; and {} more", items.len() - LISTED));
    }
    text
}

impl CloneFindings {
    /// Whether nothing stands in the way.
    pub fn is_empty(&self) -> bool {
        self.excess.is_empty() && self.missing.is_empty() && self.controllers.is_empty()
    }

    /// Why `given` cannot be handed over to the holder of `current`, in words.
    pub fn describe(&self, current: &str) -> String {
        let mut parts = Vec::new();
        if !self.excess.is_empty() {
            parts.push(format!(
                "it can do more than the current user {current}, which lacks {}",
                listed(&self.excess)
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "it exists without all that the current user {current} holds, so this function \
                 did not make it (or {current} gained it since), and whoever controls it would \
                 get {current}'s rights: it lacks {}; drop it so that the next rotation makes it \
                 afresh, or grant it the same after checking who can log in as it",
                listed(&self.missing)
            ));
        }
        if !self.controllers.is_empty() {
            parts.push(format!(
                "others can act as it or take it over: {}; remove them, or drop it so that the \
                 next rotation makes it afresh",
                listed(&self.controllers)
            ));
        }
        parts.join("; and ")
    }
}

/// Which part of a rotation a [`Shortfall`] stops, for the doctor's problem codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShortfallKind {
    /// The secret itself: its strategy, `masterarn`, the clone's name.
    Secret,
    /// The current credential (it does not log in).
    Current,
    /// The user cannot change its own password the way the strategy needs.
    OwnPassword,
    /// The master secret cannot be used: unreadable, not allowed, elsewhere, does not log in.
    Master,
    /// The master lacks a privilege the change needs.
    MasterPrivilege,
    /// The alternate account would be refused by the privilege invariant (docs/protocol.md 5.12).
    Clone,
    /// Works today, but on something its vendor deprecated (MySQL's `mysql_native_password`):
    /// reported, never a reason to stop a rotation.
    Deprecated,
}

impl ShortfallKind {
    /// Whether the next rotation would fail on it.
    pub fn blocks(self) -> bool {
        self != ShortfallKind::Deprecated
    }
}

/// One reason the next rotation would fail, found without changing anything (docs/protocol.md
/// 5.15): which check, whose account, what is missing and how to give it. Names, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// What kind of check found it.
    pub kind: ShortfallKind,
    /// The account or secret it concerns (`app@%`, `master`, a secret's ARN).
    pub account: String,
    /// What is missing or wrong (`CREATEROLE`, `ADMIN OPTION on role app`, …).
    pub missing: String,
    /// How to give it (`GRANT app TO master WITH ADMIN OPTION`), when there is a simple answer.
    pub hint: Option<String>,
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.account, self.missing)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Details of [`Error::PrivilegeMismatch`]: the account whose password a rotation would hand over
/// can do more than the secret's current account, or is controlled by others (docs/protocol.md
/// 5.12). Boxed to keep `Result<_, Error>` small.
#[derive(Debug)]
pub struct PrivilegeGap {
    /// Secret ARN or name.
    pub secret_id: String,
    /// The step that refused.
    pub step: Step,
    /// The account whose password the rotation would set (`app_clone`, `app_clone@%`).
    pub given: String,
    /// The secret's current account.
    pub current: String,
    /// What stands in the way.
    pub findings: CloneFindings,
}

impl fmt::Display for PrivilegeGap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret {} ({}): refusing to hand over the alternate user {}: {} (nothing was changed)",
            self.secret_id,
            self.step,
            self.given,
            self.findings.describe(&self.current)
        )
    }
}

/// Details of [`Error::ElastiCache`] and [`Error::MemoryDb`]: a user API call that failed, or
/// a user the API describes in a way the rotation cannot act on. Identifiers only: the service's
/// own message is kept with any password it might quote masked. Boxed to keep `Result<_, Error>`
/// small.
#[derive(Debug)]
pub struct UserApiFailure {
    /// The rotated secret's ARN or name.
    pub secret_id: String,
    /// `ElastiCache` or `MemoryDB`, as messages name the service.
    pub service: &'static str,
    /// API operation name (`DescribeUsers`, `ModifyUser`, `UpdateUser`).
    pub operation: &'static str,
    /// The user, by the ARN the secret gives.
    pub user: String,
    /// The service's error code, if any (`UserNotFound`, `InvalidUserStateFault`, …).
    pub code: Option<String>,
    /// The SDK's error chain, or what the rotation found wrong with the user.
    pub detail: String,
}

impl fmt::Display for UserApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "secret {}: {} {} of user {} failed: {}",
            self.secret_id, self.service, self.operation, self.user, self.detail
        )
    }
}

/// Every way a rotation step can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation payload is missing a field or has an unusable one.
    #[error("invalid event: field `{field}` {problem}")]
    InvalidEvent {
        /// Event field, as spelled in the payload (`Step`, `SecretId`, …).
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// The secret's `RotationEnabled` is `false`.
    #[error("secret {secret_id} is not enabled for rotation")]
    RotationDisabled {
        /// Secret ARN or name.
        secret_id: String,
    },

    /// The token is not a version of the secret.
    #[error("secret {secret_id}: version {token} has no stage for rotation")]
    UnknownVersion {
        /// Secret ARN or name.
        secret_id: String,
        /// The `ClientRequestToken`.
        token: String,
    },

    /// No version of the secret carries `AWSCURRENT`.
    #[error("secret {secret_id}: no version is staged AWSCURRENT; refusing to move labels")]
    NoCurrentVersion {
        /// Secret ARN or name.
        secret_id: String,
    },

    /// The token's version is not staged `AWSPENDING`.
    #[error("secret {secret_id}: version {token} is not staged AWSPENDING")]
    NotPending {
        /// Secret ARN or name.
        secret_id: String,
        /// The `ClientRequestToken`.
        token: String,
    },

    /// The `Step` is not one of the four protocol names.
    #[error(
        "secret {secret_id}: invalid step `{step}` (expected createSecret, setSecret, testSecret or finishSecret)"
    )]
    InvalidStep {
        /// Secret ARN or name.
        secret_id: String,
        /// The step name as received (validated printable ASCII).
        step: String,
    },

    /// A secret version's value is unusable.
    #[error("secret {secret_id} ({stage}): {problem}")]
    InvalidSecret {
        /// Secret ARN or name.
        secret_id: String,
        /// Which version was read.
        stage: Stage,
        /// What is wrong, naming the field; never its value.
        problem: String,
    },

    /// Two versions (or a secret and its master) disagree on who or where the database user is.
    #[error("{0}")]
    IdentityMismatch(Box<Mismatch>),

    /// Alternating users: the other account can do more than the current one, so handing over its
    /// password would escalate privileges. Its `errorType` is `IdentityMismatch`.
    #[error("{0}")]
    PrivilegeMismatch(Box<PrivilegeGap>),

    /// No credential that the step may use logs in.
    #[error("secret {secret_id} ({step}): unable to log into the database with the {tried} secret")]
    LoginFailed {
        /// Secret ARN or name (or the master secret's ARN when that one failed).
        secret_id: String,
        /// The step that gave up.
        step: Step,
        /// Which versions were tried, e.g. `previous, current, or pending`.
        tried: &'static str,
    },

    /// The database rejected or failed a statement; only its code is kept.
    #[error("{engine}: {action} failed ({code}){}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    Database {
        /// Engine of the secret.
        engine: Engine,
        /// What was being done (`setting the password`, `checking the login`, …).
        action: &'static str,
        /// SQLSTATE or server error number, or a short transport description.
        code: String,
        /// What the operator can do about it (`GRANT APPLICATION_PASSWORD_ADMIN ON *.* TO …`).
        hint: Option<String>,
    },

    /// The server refused the credential (a wrong password, an unknown or locked user): the
    /// caller may try another version. Its `errorType` is `LoginFailed`.
    #[error("{engine}: the server refused the login ({code})")]
    Refused {
        /// Engine of the secret.
        engine: Engine,
        /// SQLSTATE, error number or the server's error code (`28P01`, `1045`, `WRONGPASS`).
        code: String,
    },

    /// The server did not answer in time: not a refusal, so no other version is tried, and the
    /// rotation is retried by the service.
    #[error("{engine}: {action} did not answer in time ({detail})")]
    Unanswered {
        /// Engine of the secret.
        engine: Engine,
        /// What was waited for (`logging in`).
        action: &'static str,
        /// How long, and what was left.
        detail: String,
    },

    /// The configuration test (`testSecret` on a copy of the current value) found what the next
    /// rotation would fail on; nothing was changed.
    #[error(
        "secret {secret_id}: the preflight finds what the next rotation would fail on: {}; \
         nothing was changed",
        shortfalls.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    PreflightFailed {
        /// Secret ARN or name.
        secret_id: String,
        /// Every reason found, in the order of the checks.
        shortfalls: Vec<Shortfall>,
    },

    /// A Secrets Manager call failed.
    #[error("secret {secret_id}: Secrets Manager {operation} failed: {detail}")]
    SecretsManager {
        /// Secret ARN or name.
        secret_id: String,
        /// API operation name.
        operation: &'static str,
        /// The service's error code, if any.
        code: Option<String>,
        /// The SDK's error chain. SDK errors describe the response, never the request body.
        detail: String,
    },

    /// An RDS API call failed (alternating users: locating an RDS-managed master secret's
    /// database, or proving that a host is a read replica or Aurora reader of the master's).
    #[error("secret {secret_id}: RDS {operation} of {subject} failed: {detail}")]
    Rds {
        /// The rotated secret's ARN or name.
        secret_id: String,
        /// API operation name.
        operation: &'static str,
        /// What was looked up: `DB instance <id>`, `DB cluster <id>`.
        subject: String,
        /// The service's error code, if any.
        code: Option<String>,
        /// The SDK's error chain. SDK errors describe the response, never the request body.
        detail: String,
    },

    /// An ElastiCache user API call failed (engine `elasticache`).
    #[error("{0}")]
    ElastiCache(Box<UserApiFailure>),

    /// A MemoryDB user API call failed (engine `memorydb`).
    #[error("{0}")]
    MemoryDb(Box<UserApiFailure>),

    /// The function's configuration (environment variables) is invalid.
    #[error("configuration: {variable} {problem}")]
    Config {
        /// Environment variable name.
        variable: &'static str,
        /// What is wrong with it.
        problem: String,
    },

    /// Too little of the invocation's time is left to attempt the next connection or query.
    #[error("{step}: deadline exceeded before {attempt}; too little invocation time left")]
    DeadlineExceeded {
        /// The step that stopped.
        step: Step,
        /// The attempt that was skipped, e.g. `login with current secret`.
        attempt: String,
    },
}

impl Error {
    /// The stable Lambda `errorType` for this failure (docs/protocol.md 5.10).
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::InvalidEvent { .. } => "InvalidEvent",
            Error::RotationDisabled { .. } => "RotationDisabled",
            Error::UnknownVersion { .. } | Error::NoCurrentVersion { .. } => "UnknownVersion",
            Error::NotPending { .. } => "NotPending",
            Error::InvalidStep { .. } => "InvalidStep",
            Error::InvalidSecret { .. } => "InvalidSecret",
            Error::IdentityMismatch { .. } | Error::PrivilegeMismatch(_) => "IdentityMismatch",
            Error::LoginFailed { .. } | Error::Refused { .. } => "LoginFailed",
            Error::Database { .. } => "DatabaseError",
            Error::Unanswered { .. } => "DatabaseTimeout",
            Error::PreflightFailed { .. } => "PreflightFailed",
            Error::SecretsManager { .. } => "SecretsManagerError",
            Error::Rds { .. } => "RdsError",
            Error::ElastiCache(_) => "ElastiCacheError",
            Error::MemoryDb(_) => "MemoryDbError",
            Error::Config { .. } => "ConfigError",
            Error::DeadlineExceeded { .. } => "DeadlineExceeded",
        }
    }

    /// An [`Error::InvalidSecret`] of the version at `stage`: `problem` names the field, never its
    /// value.
    pub(crate) fn invalid_secret(
        secret_id: &str,
        stage: Stage,
        problem: impl fmt::Display,
    ) -> Self {
        Error::InvalidSecret {
            secret_id: secret_id.to_owned(),
            stage,
            problem: problem.to_string(),
        }
    }
}

impl From<Error> for Diagnostic {
    fn from(e: Error) -> Self {
        Diagnostic {
            error_type: e.error_type().to_owned(),
            error_message: e.to_string(),
        }
    }
}

const _: () = {
    const fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Error>();
};
