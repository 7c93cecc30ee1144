//! The function's configuration: environment variables turned into validated values, once per
//! container.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::metrics::MetricsConfig;
use crate::password::PasswordPolicy;

/// How credentials are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `single-user`: the user changes its own password.
    SingleUser,
    /// `alternating-users`: a superuser alternates the password between the user and its `_clone`.
    AlternatingUsers,
}

impl Strategy {
    /// Accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "single-user, alternating-users";

    /// Parses an exact strategy name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "single-user" => Some(Strategy::SingleUser),
            "alternating-users" => Some(Strategy::AlternatingUsers),
            _ => None,
        }
    }

    /// The strategy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
        }
    }
}

/// `TLS_MODE`: what to do when a secret has no `ssl` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `verify-full` (default): verified TLS, never a plaintext fallback.
    VerifyFull,
    /// `prefer`: verified TLS, then plaintext with a warning (the reference functions' behaviour).
    Prefer,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PASSWORD_LENGTH`, `EXCLUDE_*`, `REQUIRE_EACH_INCLUDED_TYPE`.
    pub password_policy: PasswordPolicy,
    /// `TLS_MODE`.
    pub tls_mode: TlsMode,
    /// `TLS_EXTRA_CA_FILE`: an extra PEM bundle of trusted CAs.
    pub tls_extra_ca_file: Option<PathBuf>,
    /// `DB_CONNECT_TIMEOUT_SECS`: the timeout of one connection attempt (default 5 s).
    pub connect_timeout: Duration,
    /// `ROTATION_STRATEGY`, overridden per secret by `rotation_strategy`.
    pub strategy: Strategy,
    /// `USERNAME_CHARACTER_LIMIT`: the longest MySQL user name a clone may have (default 16).
    pub mysql_username_limit: usize,
    /// `SECRETS_MANAGER_ENDPOINT`: an explicit endpoint that wins over the SDK's settings.
    pub secrets_manager_endpoint: Option<String>,
    /// `METRICS`, `METRICS_NAMESPACE`, `METRICS_DIMENSIONS`.
    pub metrics: MetricsConfig,
}

impl Default for Config {
    /// The configuration with every variable unset.
    fn default() -> Self {
        Config {
            password_policy: PasswordPolicy::default(),
            tls_mode: TlsMode::VerifyFull,
            tls_extra_ca_file: None,
            connect_timeout: Duration::from_secs(5),
            strategy: Strategy::SingleUser,
            mysql_username_limit: 16,
            secrets_manager_endpoint: None,
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// Reads the process environment. See [`Config::from_lookup`].
    pub fn from_env() -> Result<(Self, Vec<String>), Error> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads and validates every variable through `lookup`. Returns the configuration and warnings
    /// (unrecognised spellings that fell back to a default). An empty variable counts as unset, except
    /// `EXCLUDE_CHARACTERS`, where empty means "exclude nothing".
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Self, Vec<String>), Error> {
        let set = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let (password_policy, warnings) = PasswordPolicy::from_lookup(lookup)?;

        let tls_mode = match set("TLS_MODE").as_deref() {
            None | Some("verify-full") => TlsMode::VerifyFull,
            Some("prefer") => TlsMode::Prefer,
            Some(_) => {
                return Err(Error::Config {
                    variable: "TLS_MODE",
                    problem: "must be `verify-full` or `prefer`".into(),
                });
            }
        };
        let connect_timeout = match set("DB_CONNECT_TIMEOUT_SECS") {
            None => Duration::from_secs(5),
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.1 && *s <= 300.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| Error::Config {
                    variable: "DB_CONNECT_TIMEOUT_SECS",
                    problem: "must be a number of seconds from 0.1 to 300".into(),
                })?,
        };
        let strategy = match set("ROTATION_STRATEGY") {
            None => Strategy::SingleUser,
            Some(v) => Strategy::parse(&v).ok_or_else(|| Error::Config {
                variable: "ROTATION_STRATEGY",
                problem: format!("must be one of: {}", Strategy::ACCEPTED),
            })?,
        };
        let mysql_username_limit = match set("USERNAME_CHARACTER_LIMIT") {
            None => 16,
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=80).contains(n))
                .ok_or_else(|| Error::Config {
                    variable: "USERNAME_CHARACTER_LIMIT",
                    problem: "must be an integer from 1 to 80".into(),
                })?,
        };
        Ok((
            Config {
                password_policy,
                tls_mode,
                tls_extra_ca_file: set("TLS_EXTRA_CA_FILE").map(PathBuf::from),
                connect_timeout,
                strategy,
                mysql_username_limit,
                secrets_manager_endpoint: set("SECRETS_MANAGER_ENDPOINT"),
                metrics: MetricsConfig::from_lookup(lookup)?,
            },
            warnings,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Error> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(&|name| map.get(name).cloned()).map(|(c, _)| c)
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.tls_mode, TlsMode::VerifyFull);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.strategy, Strategy::SingleUser);
        assert_eq!(c.mysql_username_limit, 16);
        assert_eq!(c.secrets_manager_endpoint, None);
        assert_eq!(c.password_policy, PasswordPolicy::default());
    }

    #[test]
    fn values_are_read() {
        let c = config(&[
            ("TLS_MODE", "prefer"),
            ("DB_CONNECT_TIMEOUT_SECS", "2.5"),
            ("ROTATION_STRATEGY", "alternating-users"),
            ("USERNAME_CHARACTER_LIMIT", "32"),
            ("SECRETS_MANAGER_ENDPOINT", "https://vpce.example"),
            ("TLS_EXTRA_CA_FILE", "/opt/ca.pem"),
        ])
        .unwrap();
        assert_eq!(c.tls_mode, TlsMode::Prefer);
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        assert_eq!(c.strategy, Strategy::AlternatingUsers);
        assert_eq!(c.mysql_username_limit, 32);
        assert_eq!(
            c.secrets_manager_endpoint.as_deref(),
            Some("https://vpce.example")
        );
        assert_eq!(c.tls_extra_ca_file, Some(PathBuf::from("/opt/ca.pem")));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("TLS_MODE", "require"),
            ("TLS_MODE", "VERIFY-FULL"),
            ("DB_CONNECT_TIMEOUT_SECS", "0"),
            ("DB_CONNECT_TIMEOUT_SECS", "soon"),
            ("ROTATION_STRATEGY", "multi-user"),
            ("USERNAME_CHARACTER_LIMIT", "0"),
            ("PASSWORD_LENGTH", "0"),
        ] {
            match config(&[(name, value)]) {
                Err(e @ Error::Config { variable, .. }) => {
                    assert_eq!(variable, name);
                    assert_eq!(e.error_type(), "ConfigError");
                }
                other => panic!("{name}={value}: {other:?}"),
            }
        }
    }
}
