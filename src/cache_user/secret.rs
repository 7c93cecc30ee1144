//! The secret of an ElastiCache or MemoryDB user: AWS's shape (`user_arn`, `username`,
//! `password`), plus an optional `engine` and `rotation_strategy`. Every other key is kept
//! verbatim, as for database secrets (docs/protocol.md 4).

use std::fmt;

use serde_json::{Map, Value};

use super::{AuthType, CacheUser, Home, Service, UserArn};
use crate::credentials::{Keys, Password, describe_json_error};
use crate::deadline::StepContext;
use crate::error::{Error, Mismatch};
use crate::protocol::{Stage, Strategy};

/// A cache user's secret, validated: a well-formed user ARN in the function's own account and
/// Region, a user name, a password.
///
/// `Debug` shows the ARN, the user name and the strategy, never the password or other keys'
/// values.
#[derive(Clone)]
pub struct CacheUserSecret {
    fields: Map<String, Value>,
    user: UserArn,
    username: String,
    password: Password,
    rotation_strategy: Option<Strategy>,
}

impl fmt::Debug for CacheUserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheUserSecret")
            .field("user_arn", &self.user.as_str())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("rotation_strategy", &self.rotation_strategy)
            .finish_non_exhaustive()
    }
}

impl CacheUserSecret {
    /// Parses and validates the `SecretString` of `secret_id` at `stage`:
    ///
    /// - `user_arn`: an ElastiCache (`…:user:<user-id>`) or MemoryDB (`…:user/<name>`) user ARN
    ///   in `home`'s partition, account and Region;
    /// - `username`, `password`: strings (`username` not empty);
    /// - `engine`, when present: `elasticache` or `memorydb`, the service the ARN names;
    /// - `rotation_strategy`, when present: a strategy name (which ones the engine serves is the
    ///   caller's question).
    ///
    /// Errors name the secret, the stage, the field and, for `user_arn`, the ARN (an identifier);
    /// never a value of any other key.
    pub fn parse(secret_id: &str, stage: Stage, text: &str, home: &Home) -> Result<Self, Error> {
        let invalid = |problem: String| Error::invalid_secret(secret_id, stage, problem);
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(describe_json_error(&e)))?;
        let Value::Object(fields) = value else {
            return Err(invalid("value must be a JSON object".into()));
        };
        let keys = Keys {
            fields: &fields,
            invalid: &invalid,
        };
        let arn = keys.required_string("user_arn")?;
        let user = UserArn::parse(&arn)
            .map_err(|problem| invalid(format!("field `user_arn` ({arn}) {problem}")))?;
        user.check_home(home)
            .map_err(|problem| invalid(format!("field `user_arn` ({arn}) {problem}")))?;
        if let Some(engine) = keys.optional_string("engine")? {
            if engine != user.service().engine() {
                return Err(invalid(format!(
                    "field `engine` must be `{}` for the user that `user_arn` ({arn}) names, or \
                     absent",
                    user.service().engine()
                )));
            }
        }
        let username = keys.required_string("username")?;
        let password = keys.password()?;
        let rotation_strategy = keys.rotation_strategy()?;
        Ok(CacheUserSecret {
            fields,
            user,
            username,
            password,
            rotation_strategy,
        })
    }

    /// The user, by its ARN.
    pub fn user(&self) -> &UserArn {
        &self.user
    }

    /// The service that manages the user.
    pub fn service(&self) -> Service {
        self.user.service()
    }

    /// `username`: the name clients log in with.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// `password`.
    pub fn password(&self) -> &Password {
        &self.password
    }

    /// `rotation_strategy`, when the secret has one.
    pub fn rotation_strategy(&self) -> Option<Strategy> {
        self.rotation_strategy
    }

    /// The secret's JSON, every key in its original order and type.
    pub fn to_json(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }

    /// A copy with `password` replaced, in place, and nothing else changed: createSecret's
    /// pending value.
    pub fn with_password(&self, password: Password) -> Self {
        let mut next = self.clone();
        next.fields.insert(
            "password".to_owned(),
            Value::String(password.expose().to_owned()),
        );
        next.password = password;
        next
    }

    /// Checks the secret against the user its ARN names, as the API describes it: the secret's
    /// `username` must be the user's name (exact strings), and the user must authenticate by
    /// password. `stage` is the version read. A forged `user_arn` cannot aim the function at a
    /// user whose name the secret does not already carry; nor is an IAM or password-less user
    /// given passwords.
    pub fn check_user(
        &self,
        user: &CacheUser,
        stage: Stage,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        if user.name != self.username {
            return Err(Error::IdentityMismatch(Box::new(Mismatch {
                secret_id: ctx.secret_id.to_owned(),
                step: ctx.step.clone(),
                what: "user",
                found: self.username.clone(),
                expected_role: "the user that user_arn names",
                expected: format!("{} ({})", user.name, self.user),
            })));
        }
        match &user.authentication {
            AuthType::Password => Ok(()),
            other => Err(Error::invalid_secret(
                ctx.secret_id,
                stage,
                format!(
                    "field `user_arn` ({}) names a {} user that authenticates by {other}, not by \
                     password: it has no password to rotate",
                    self.user,
                    self.service()
                ),
            )),
        }
    }

    /// Checks that `pending` names the same user as this (current) secret: the same `user_arn`
    /// and `username`, exact strings. Otherwise a forged pending version could aim setSecret at
    /// another user.
    pub fn check_same_user(
        &self,
        pending: &CacheUserSecret,
        ctx: &StepContext<'_>,
    ) -> Result<(), Error> {
        let mismatch = |what: &'static str, found: &str, expected: &str| {
            Error::IdentityMismatch(Box::new(Mismatch {
                secret_id: ctx.secret_id.to_owned(),
                step: ctx.step.clone(),
                what,
                found: found.to_owned(),
                expected_role: "current",
                expected: expected.to_owned(),
            }))
        };
        if pending.user.as_str() != self.user.as_str() {
            return Err(mismatch(
                "user_arn",
                pending.user.as_str(),
                self.user.as_str(),
            ));
        }
        if pending.username != self.username {
            return Err(mismatch("user", &pending.username, &self.username));
        }
        Ok(())
    }
}
