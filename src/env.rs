//! The environment, read once and by one set of rules.
//!
//! As ripgrep turns raw flags into validated arguments in a separate step, the function first takes
//! a raw snapshot of the variables it knows ([`Env`]: the process environment in `main`, a map in
//! tests, which never mutate the process environment), then each module turns the values it owns
//! into typed settings with the readers below, so that a spelling means the same in every variable.
//!
//! # The rules
//!
//! - **AWS's variables** (`PASSWORD_LENGTH`, `EXCLUDE_*`, `REQUIRE_EACH_INCLUDED_TYPE`: the
//!   reference functions' interface, docs/protocol.md 5.1) are read exactly as the reference reads
//!   them: a variable is set when present, even empty, and its value is taken as it is
//!   (`EXCLUDE_CHARACTERS=""` excludes nothing; an empty boolean is false; an empty
//!   `PASSWORD_LENGTH` is an error).
//! - **Every other variable** (the function's own and Lambda's) is trimmed, and empty counts as
//!   unset: a deployment parameter left blank means the default.
//! - **Booleans** (`Env::flag`, AWS's): case-insensitive `true`, `1`, `y`, `yes` are true and
//!   anything else is false, as in the reference; a spelling other than those and `false`, `0`,
//!   `n`, `no` reads false with a warning, so that `EXCLUDE_NUMBERS=on` does not pass unnoticed.
//! - **Switches** (`Env::switch`, the function's own, `METRICS`): the same true and false
//!   spellings, plus `on` and `off` (the deployment template's values); any other value is a
//!   configuration error. A switch is on by default, so the reference's "anything else is false"
//!   would let a typo silently turn it off, and `METRICS=on` would read as off.
//! - **Choices and numbers** (`Env::choice`, `Env::number`): an unusable value is a
//!   configuration error naming the variable and what it accepts, never a silent default.

use std::collections::BTreeMap;
use std::str::FromStr;

use crate::error::Error;

/// Every variable the function reads (docs/protocol.md 8), plus Lambda's logging controls and
/// concurrency setting.
const VARIABLES: &[&str] = &[
    "PASSWORD_LENGTH",
    "EXCLUDE_CHARACTERS",
    "EXCLUDE_NUMBERS",
    "EXCLUDE_PUNCTUATION",
    "EXCLUDE_UPPERCASE",
    "EXCLUDE_LOWERCASE",
    "REQUIRE_EACH_INCLUDED_TYPE",
    "TLS_MODE",
    "TLS_EXTRA_CA_FILE",
    "DB_CONNECT_TIMEOUT_SECS",
    "ROTATION_STRATEGY",
    "USERNAME_CHARACTER_LIMIT",
    "SECRETS_MANAGER_ENDPOINT",
    "ALLOW_CLEARTEXT_PASSWORDS",
    "MASTER_SECRET_ARNS",
    "AUDIT_EVENTS",
    "METRICS",
    "METRICS_NAMESPACE",
    "METRICS_DIMENSIONS",
    "AWS_LAMBDA_LOG_LEVEL",
    "AWS_LAMBDA_LOG_FORMAT",
    "RUST_LOG",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Spellings of true, case-insensitive (the reference's).
const TRUE_SPELLINGS: [&str; 4] = ["true", "1", "y", "yes"];
/// Spellings of false that need no warning, case-insensitive.
const FALSE_SPELLINGS: [&str; 4] = ["false", "0", "n", "no"];

/// A raw snapshot of the variables the function reads (docs/protocol.md 8, and Lambda's logging
/// controls): values as they were, nothing interpreted.
///
/// None of them is secret, so `Debug` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    values: BTreeMap<&'static str, String>,
}

impl Env {
    /// The process environment. A value that is not valid Unicode counts as unset.
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The variables `lookup` knows (a map in tests).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Env {
            values: VARIABLES
                .iter()
                .filter_map(|&name| lookup(name).map(|value| (name, value)))
                .collect(),
        }
    }

    /// The given variables and no others; names the function does not read are ignored.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_lookup(|name| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// One of AWS's variables, as the reference reads it: present (even empty) means set, and the
    /// value is untouched.
    pub(crate) fn aws(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Any other variable: trimmed, and `None` when unset or empty.
    pub(crate) fn setting(&self, name: &str) -> Option<&str> {
        self.aws(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// One of AWS's booleans: `default` when unset; else true for a true spelling and false for
    /// anything else, with a warning (naming the variable and quoting the value, which is not
    /// secret) for a spelling that is neither true nor false.
    pub(crate) fn flag(&self, name: &str, default: bool, warnings: &mut Vec<String>) -> bool {
        let Some(value) = self.aws(name) else {
            return default;
        };
        match spelling(value) {
            Some(parsed) => parsed,
            None => {
                warnings.push(format!(
                    "{name} is {value:?}, which is not a recognised boolean, and reads as false; \
                     use true or false"
                ));
                false
            }
        }
    }

    /// A switch of the function's own: `default` when unset; `on` or a true spelling, `off` or a
    /// false spelling (case-insensitive); else an error naming the variable.
    pub(crate) fn switch(&self, name: &'static str, default: bool) -> Result<bool, Error> {
        let Some(value) = self.setting(name) else {
            return Ok(default);
        };
        let spelled = if value.eq_ignore_ascii_case("on") {
            Some(true)
        } else if value.eq_ignore_ascii_case("off") {
            Some(false)
        } else {
            spelling(value)
        };
        spelled.ok_or_else(|| Error::Config {
            variable: name,
            problem: "must be `on` or `off` (or true or false)".into(),
        })
    }

    /// One of a fixed set of values, spelled exactly: `Ok(None)` when unset; an error listing
    /// `accepted` when `parse` does not know the value.
    pub(crate) fn choice<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        accepted: &str,
    ) -> Result<Option<T>, Error> {
        self.setting(name)
            .map(|value| {
                parse(value).ok_or_else(|| Error::Config {
                    variable: name,
                    problem: format!("must be one of: {accepted}"),
                })
            })
            .transpose()
    }

    /// A number in `range`: `Ok(None)` when unset; an error saying `expected` when the value does
    /// not parse or is out of range.
    pub(crate) fn number<T: FromStr + PartialOrd>(
        &self,
        name: &'static str,
        range: std::ops::RangeInclusive<T>,
        expected: &str,
    ) -> Result<Option<T>, Error> {
        self.setting(name)
            .map(|value| {
                value
                    .parse::<T>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or_else(|| Error::Config {
                        variable: name,
                        problem: format!("must be {expected}"),
                    })
            })
            .transpose()
    }

    /// A comma-separated list: each item trimmed, empty items dropped; `None` when unset, empty
    /// or only commas.
    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        let items: Vec<String> = self
            .setting(name)?
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect();
        (!items.is_empty()).then_some(items)
    }
}

/// `Some(true)` for a true spelling, `Some(false)` for a false one, `None` for anything else.
fn spelling(value: &str) -> Option<bool> {
    let is = |spellings: &[&str]| spellings.iter().any(|s| value.eq_ignore_ascii_case(s));
    if is(&TRUE_SPELLINGS) {
        Some(true)
    } else if is(&FALSE_SPELLINGS) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_variables_are_kept() {
        let env = Env::from_pairs(&[("TLS_MODE", "prefer"), ("HOME", "/root")]);
        assert_eq!(env.setting("TLS_MODE"), Some("prefer"));
        assert_eq!(env.aws("HOME"), None);
    }

    #[test]
    fn settings_are_trimmed_and_empty_is_unset_but_aws_values_are_raw() {
        let env = Env::from_pairs(&[
            ("TLS_MODE", " prefer\n"),
            ("SECRETS_MANAGER_ENDPOINT", ""),
            ("METRICS_NAMESPACE", "   "),
            ("EXCLUDE_CHARACTERS", ""),
            ("PASSWORD_LENGTH", " 40 "),
        ]);
        assert_eq!(env.setting("TLS_MODE"), Some("prefer"));
        assert_eq!(env.setting("SECRETS_MANAGER_ENDPOINT"), None);
        assert_eq!(env.setting("METRICS_NAMESPACE"), None);
        assert_eq!(env.aws("EXCLUDE_CHARACTERS"), Some(""));
        assert_eq!(env.aws("PASSWORD_LENGTH"), Some(" 40 "));
        assert_eq!(env.aws("EXCLUDE_NUMBERS"), None);
    }

    #[test]
    fn flags_read_as_the_reference_reads_them() {
        for (value, expected, warns) in [
            ("YES", true, false),
            ("y", true, false),
            ("1", true, false),
            ("No", false, false),
            ("0", false, false),
            ("on", false, true),
            ("off", false, true),
            ("", false, true),
            ("true ", false, true),
        ] {
            let mut warnings = Vec::new();
            let env = Env::from_pairs(&[("EXCLUDE_NUMBERS", value)]);
            assert_eq!(
                env.flag("EXCLUDE_NUMBERS", true, &mut warnings),
                expected,
                "{value:?}"
            );
            assert_eq!(
                warnings.len(),
                usize::from(warns),
                "{value:?}: {warnings:?}"
            );
        }
        let mut warnings = Vec::new();
        assert!(Env::default().flag("EXCLUDE_NUMBERS", true, &mut warnings));
        assert!(warnings.is_empty());
    }

    #[test]
    fn switches_take_on_off_and_the_boolean_spellings_and_nothing_else() {
        for (value, expected) in [
            ("on", Some(true)),
            ("ON", Some(true)),
            ("true", Some(true)),
            ("yes", Some(true)),
            ("off", Some(false)),
            ("false", Some(false)),
            ("0", Some(false)),
            (" off ", Some(false)),
            ("", Some(true)),
            ("maybe", None),
            ("of", None),
        ] {
            let env = Env::from_pairs(&[("METRICS", value)]);
            match (env.switch("METRICS", true), expected) {
                (Ok(got), Some(expected)) => assert_eq!(got, expected, "{value:?}"),
                (Err(Error::Config { variable, .. }), None) => assert_eq!(variable, "METRICS"),
                (got, _) => panic!("{value:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn choices_and_numbers_name_the_variable() {
        let env = Env::from_pairs(&[
            ("TLS_MODE", "VERIFY-FULL"),
            ("USERNAME_CHARACTER_LIMIT", "81"),
        ]);
        let mode = env.choice(
            "TLS_MODE",
            |v| (v == "verify-full").then_some(()),
            "verify-full",
        );
        assert!(matches!(
            mode,
            Err(Error::Config {
                variable: "TLS_MODE",
                ..
            })
        ));
        let limit = env.number("USERNAME_CHARACTER_LIMIT", 1..=80_usize, "from 1 to 80");
        assert!(matches!(
            limit,
            Err(Error::Config {
                variable: "USERNAME_CHARACTER_LIMIT",
                ..
            })
        ));
        assert_eq!(
            env.number("DB_CONNECT_TIMEOUT_SECS", 0.1..=300.0, "x")
                .unwrap(),
            None::<f64>
        );
    }
}
