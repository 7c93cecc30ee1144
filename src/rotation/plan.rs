//! [`Plan`]: what a secret's rotation is, decided once from its current value and the
//! configuration (docs/protocol.md 5.8, 5.9, 5.13): the strategy and where it came from, how the
//! engine carries it out, the master secret when one acts, and the other account's name for
//! alternating users. Every face asks it: createSecret and setSecret, the configuration test, the
//! doctor.

use crate::config::Config;
use crate::credentials::DbSecret;
use crate::engine::{Method, clone_name};
use crate::error::Error;
use crate::protocol::{Stage, Strategy};

/// A secret's rotation, as its current value and the configuration decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The strategy: the secret's `rotation_strategy`, else `ROTATION_STRATEGY`.
    pub strategy: Strategy,
    /// How the engine carries it out: the user's own change or the master's, of one password
    /// or of two ([`crate::engine::Engine::support`]).
    pub method: Method,
    /// The master secret, when [`Method::needs_master`].
    pub masterarn: Option<String>,
    /// Alternating users: the pending user, `_clone` added or removed, within the engine's
    /// user-name limit.
    pub other_user: Option<String>,
}

impl Plan {
    /// The strategy of `current` under `config`.
    pub fn strategy(current: &DbSecret, config: &Config) -> Strategy {
        current.rotation_strategy().unwrap_or(config.strategy)
    }

    /// Decides the plan, or refuses with [`Error::InvalidSecret`] naming the field: a strategy
    /// the engine does not serve (with what to use instead), a missing `masterarn`, a clone name
    /// over the engine's limit. Nothing has been written when it fails.
    pub fn of(secret_id: &str, current: &DbSecret, config: &Config) -> Result<Self, Error> {
        let invalid = |problem: String| Error::invalid_secret(secret_id, Stage::Current, problem);
        let strategy = Self::strategy(current, config);
        let engine = current.engine();
        let method = engine.support(strategy).map_err(|instead| {
            let source = match current.rotation_strategy() {
                Some(_) => "the secret's rotation_strategy",
                None => "ROTATION_STRATEGY",
            };
            invalid(format!(
                "strategy {strategy} (from {source}) is not supported for engine {engine}; {instead}"
            ))
        })?;
        let masterarn = match (method.needs_master(), current.masterarn()) {
            (false, _) => None,
            (true, Some(arn)) => Some(arn.to_owned()),
            (true, None) => {
                return Err(invalid(format!(
                    "masterarn key is missing from secret JSON (required by the {strategy} \
                     strategy)"
                )));
            }
        };
        let other_user = match method {
            Method::MasterClone => {
                let limit = engine.username_limit(config.mysql_username_limit);
                Some(clone_name(current.username(), limit).map_err(|limit| {
                    invalid(format!(
                        "unable to clone user, username length with _clone appended would \
                         exceed {limit}"
                    ))
                })?)
            }
            _ => None,
        };
        Ok(Plan {
            strategy,
            method,
            masterarn,
            other_user,
        })
    }

    /// The pending version's user: the other account for alternating users, else current's.
    pub fn pending_user<'a>(&'a self, current: &'a DbSecret) -> &'a str {
        self.other_user.as_deref().unwrap_or(current.username())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(extra: &str) -> DbSecret {
        let text =
            format!(r#"{{"engine":"postgres","host":"h","username":"app","password":"p"{extra}}}"#);
        DbSecret::parse("arn:s", Stage::Current, &text).unwrap()
    }

    #[test]
    fn plans_follow_the_capability_table() {
        let config = Config::default();
        let plan = Plan::of("arn:s", &secret(""), &config).unwrap();
        assert_eq!(
            (plan.strategy, plan.method),
            (Strategy::SingleUser, Method::OwnPassword)
        );
        let plan = Plan::of(
            "arn:s",
            &secret(r#","rotation_strategy":"alternating-users","masterarn":"arn:m""#),
            &config,
        )
        .unwrap();
        assert_eq!(plan.method, Method::MasterClone);
        assert_eq!(plan.masterarn.as_deref(), Some("arn:m"));
        assert_eq!(plan.other_user.as_deref(), Some("app_clone"));
    }

    #[test]
    fn refusals_name_the_field_and_the_way_out() {
        let config = Config {
            strategy: Strategy::DualPassword,
            ..Config::default()
        };
        let e = Plan::of("arn:s", &secret(""), &config).unwrap_err();
        let text = e.to_string();
        assert_eq!(e.error_type(), "InvalidSecret");
        assert!(
            text.contains("ROTATION_STRATEGY") && text.contains("use alternating-users"),
            "{text}"
        );
        let e = Plan::of(
            "arn:s",
            &secret(r#","rotation_strategy":"alternating-users""#),
            &Config::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("masterarn key is missing"), "{e}");
        let long = format!(r#","username":"{}""#, "x".repeat(58));
        let text = format!(
            r#"{{"engine":"postgres","host":"h","password":"p","rotation_strategy":"alternating-users","masterarn":"arn:m"{long}}}"#
        );
        let long = DbSecret::parse("arn:s", Stage::Current, &text).unwrap();
        let e = Plan::of("arn:s", &long, &Config::default()).unwrap_err();
        assert!(e.to_string().contains("exceed 63 bytes"), "{e}");
    }
}
