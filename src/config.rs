//! The function's configuration: the environment ([`Env`]) turned into validated values, once per
//! container.

use std::path::PathBuf;
use std::time::Duration;

use crate::env::Env;
use crate::error::Error;
use crate::metrics::MetricsConfig;
use crate::password::PasswordPolicy;
use crate::protocol::Strategy;
use crate::tls::SystemStore;

/// `TLS_MODE`: what to do when a secret has no `ssl` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// `verify-full` (default): verified TLS, never a plaintext fallback.
    VerifyFull,
    /// `prefer`: verified TLS, then plaintext with a warning (the reference functions' behaviour).
    Prefer,
}

impl TlsMode {
    /// Accepted spellings, for error messages.
    const ACCEPTED: &'static str = "verify-full, prefer";

    fn parse(value: &str) -> Option<Self> {
        match value {
            "verify-full" => Some(TlsMode::VerifyFull),
            "prefer" => Some(TlsMode::Prefer),
            _ => None,
        }
    }
}

/// `AUDIT_EVENTS`: what an invocation event may ask of the doctor (docs/protocol.md 5.14). The
/// deployment decides, never the event: anyone allowed to invoke the function could otherwise
/// read every secret's audit or move staging labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditEvents {
    /// `off` (default): an audit event is refused.
    Off,
    /// `audit`: an event may run the audit, read-only; `--repair` is refused.
    Audit,
    /// `repair`: an event may also repair a stuck `AWSPENDING`.
    Repair,
}

impl AuditEvents {
    /// Accepted spellings, for error messages.
    const ACCEPTED: &'static str = "off, audit, repair";

    fn parse(value: &str) -> Option<Self> {
        match value {
            "off" => Some(AuditEvents::Off),
            "audit" => Some(AuditEvents::Audit),
            "repair" => Some(AuditEvents::Repair),
            _ => None,
        }
    }

    /// The value as spelled in the variable.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEvents::Off => "off",
            AuditEvents::Audit => "audit",
            AuditEvents::Repair => "repair",
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `PASSWORD_LENGTH`, `EXCLUDE_*`, `REQUIRE_EACH_INCLUDED_TYPE`.
    pub password_policy: PasswordPolicy,
    /// `TLS_MODE`.
    pub tls_mode: TlsMode,
    /// `TLS_EXTRA_CA_FILE`: an extra PEM bundle of trusted CAs.
    pub tls_extra_ca_file: Option<PathBuf>,
    /// `SSL_CERT_FILE`, `SSL_CERT_DIR`: where the operating system's trust store is.
    pub tls_system_store: SystemStore,
    /// `DB_CONNECT_TIMEOUT_SECS`: the timeout of one connection attempt (default 5 s).
    pub connect_timeout: Duration,
    /// `ROTATION_STRATEGY`, overridden per secret by `rotation_strategy`.
    pub strategy: Strategy,
    /// `USERNAME_CHARACTER_LIMIT`: the longest MySQL user name a clone may have (default 16).
    pub mysql_username_limit: usize,
    /// `SECRETS_MANAGER_ENDPOINT`: an explicit endpoint that wins over the SDK's settings.
    pub secrets_manager_endpoint: Option<String>,
    /// `ALLOW_CLEARTEXT_PASSWORDS`: whether a password may cross a connection without verified
    /// TLS in a form an observer can read or replay (a server's cleartext or MD5 password request,
    /// Redis `AUTH`, a MySQL statement carrying a password). Off by default; SCRAM and
    /// client-computed values never need it.
    pub allow_cleartext_passwords: bool,
    /// `MASTER_SECRET_ARNS`: the master secrets a `masterarn` may name; `None` when unset (any
    /// secret the function's role may read).
    pub master_secret_arns: Option<Vec<String>>,
    /// `AUDIT_EVENTS`: what an invocation event may ask of the doctor.
    pub audit_events: AuditEvents,
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
            tls_system_store: SystemStore::default(),
            connect_timeout: Duration::from_secs(5),
            strategy: Strategy::SingleUser,
            mysql_username_limit: 16,
            secrets_manager_endpoint: None,
            allow_cleartext_passwords: false,
            master_secret_arns: None,
            audit_events: AuditEvents::Off,
            metrics: MetricsConfig::default(),
        }
    }
}

impl Config {
    /// Validates every variable of `env`, by the rules of [`crate::env`]. Returns the configuration
    /// and warnings (unrecognised boolean spellings, which read as false).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first invalid variable.
    pub fn from_env(env: &Env) -> Result<(Self, Vec<String>), Error> {
        let (password_policy, warnings) = PasswordPolicy::from_env(env)?;
        let defaults = Config::default();
        let config = Config {
            password_policy,
            tls_mode: env
                .choice("TLS_MODE", TlsMode::parse, TlsMode::ACCEPTED)?
                .unwrap_or(defaults.tls_mode),
            tls_extra_ca_file: env.setting("TLS_EXTRA_CA_FILE").map(PathBuf::from),
            tls_system_store: SystemStore {
                cert_file: env.setting("SSL_CERT_FILE").map(PathBuf::from),
                cert_dir: env.setting("SSL_CERT_DIR").map(PathBuf::from),
            },
            connect_timeout: env
                .number(
                    "DB_CONNECT_TIMEOUT_SECS",
                    0.1..=300.0,
                    "a number of seconds from 0.1 to 300",
                )?
                .map_or(defaults.connect_timeout, Duration::from_secs_f64),
            strategy: env
                .choice("ROTATION_STRATEGY", Strategy::parse, Strategy::ACCEPTED)?
                .unwrap_or(defaults.strategy),
            mysql_username_limit: env
                .number(
                    "USERNAME_CHARACTER_LIMIT",
                    1..=80,
                    "an integer from 1 to 80",
                )?
                .unwrap_or(defaults.mysql_username_limit),
            secrets_manager_endpoint: env.setting("SECRETS_MANAGER_ENDPOINT").map(str::to_owned),
            allow_cleartext_passwords: env.switch(
                "ALLOW_CLEARTEXT_PASSWORDS",
                defaults.allow_cleartext_passwords,
            )?,
            master_secret_arns: env.list("MASTER_SECRET_ARNS"),
            audit_events: env
                .choice("AUDIT_EVENTS", AuditEvents::parse, AuditEvents::ACCEPTED)?
                .unwrap_or(defaults.audit_events),
            metrics: MetricsConfig::from_env(env)?,
        };
        Ok((config, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, Error> {
        Config::from_env(&Env::from_pairs(vars)).map(|(c, _)| c)
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.tls_mode, TlsMode::VerifyFull);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.strategy, Strategy::SingleUser);
        assert_eq!(c.mysql_username_limit, 16);
        assert_eq!(c.secrets_manager_endpoint, None);
        assert_eq!(c.password_policy, PasswordPolicy::default());
        assert!(!c.allow_cleartext_passwords);
        assert_eq!(c.master_secret_arns, None);
        assert_eq!(c.audit_events, AuditEvents::Off);
        // Blank values of the function's own variables mean the default too.
        let blank = config(&[
            ("TLS_MODE", ""),
            ("DB_CONNECT_TIMEOUT_SECS", " "),
            ("ROTATION_STRATEGY", ""),
            ("SECRETS_MANAGER_ENDPOINT", ""),
            ("TLS_EXTRA_CA_FILE", ""),
            ("METRICS", ""),
            ("MASTER_SECRET_ARNS", " , "),
            ("AUDIT_EVENTS", ""),
        ])
        .unwrap();
        assert_eq!(blank, Config::default());
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
            ("SSL_CERT_FILE", "/etc/ssl/bundle.pem"),
            ("METRICS", "off"),
            ("ALLOW_CLEARTEXT_PASSWORDS", "on"),
            ("MASTER_SECRET_ARNS", " arn:a , ,arn:b,"),
            ("AUDIT_EVENTS", "repair"),
        ])
        .unwrap();
        assert!(c.allow_cleartext_passwords);
        assert_eq!(
            c.master_secret_arns,
            Some(vec!["arn:a".to_owned(), "arn:b".to_owned()])
        );
        assert_eq!(c.audit_events, AuditEvents::Repair);
        assert_eq!(c.tls_mode, TlsMode::Prefer);
        assert_eq!(c.connect_timeout, Duration::from_millis(2500));
        assert_eq!(c.strategy, Strategy::AlternatingUsers);
        assert_eq!(c.mysql_username_limit, 32);
        assert_eq!(
            c.secrets_manager_endpoint.as_deref(),
            Some("https://vpce.example")
        );
        assert_eq!(c.tls_extra_ca_file, Some(PathBuf::from("/opt/ca.pem")));
        assert_eq!(
            c.tls_system_store,
            SystemStore {
                cert_file: Some(PathBuf::from("/etc/ssl/bundle.pem")),
                cert_dir: None,
            }
        );
        assert!(!c.metrics.enabled);
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
            ("METRICS", "maybe"),
            ("ALLOW_CLEARTEXT_PASSWORDS", "sometimes"),
            ("AUDIT_EVENTS", "Repair"),
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

    #[test]
    fn warnings_are_returned() {
        let (_, warnings) =
            Config::from_env(&Env::from_pairs(&[("EXCLUDE_NUMBERS", "on")])).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("EXCLUDE_NUMBERS"));
    }
}
