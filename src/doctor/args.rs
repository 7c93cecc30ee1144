//! The command line, parsed by hand (a handful of flags; no parser crate in the Lambda's binary):
//! raw arguments first become a [`Command`], whose [`Options`] are checked before anything runs.

use std::fmt;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `--help`, `-h`, `help`, or `doctor --help`: the usage text.
    Help,
    /// `--version`, `-V`.
    Version,
    /// `doctor …`: an audit.
    Doctor(Options),
}

/// The options of `doctor`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--secret ID`, repeatable: names or ARNs, in the order given.
    pub secrets: Vec<String>,
    /// `--all`: every secret with rotation configured.
    pub all: bool,
    /// `--function ARN`: only secrets rotated by this function (an ARN or a function name).
    pub function: Option<String>,
    /// `--login`, implied by `--repair`: also log in to the databases, read-only.
    pub login: bool,
    /// `--repair`: fix a stuck `AWSPENDING` where that is safe.
    pub repair: bool,
    /// `--json`: one JSON document instead of the table.
    pub json: bool,
}

impl Options {
    /// Whether secrets are to be found with `ListSecrets` rather than only named.
    pub fn lists(&self) -> bool {
        self.all || (self.secrets.is_empty() && self.function.is_some())
    }
}

/// A command line that cannot be run, and why, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (db-secret-rotator --help shows the usage)", self.0)
    }
}

impl std::error::Error for UsageError {}

/// The usage text of `--help`.
pub const HELP: &str = "\
db-secret-rotator rotates database credentials stored in AWS Secrets Manager.

Run without arguments it is the Lambda function. Run with arguments it is the operator's tool:

  db-secret-rotator doctor [--secret ID]... [--all] [--function ARN] [--login] [--repair] [--json]
  db-secret-rotator --help
  db-secret-rotator --version

doctor audits the rotation of secrets and repairs a stuck AWSPENDING. It is read-only unless
--repair is given, and it never changes a database password.

  --secret ID      a secret's name or ARN; repeat it for several secrets
  --all            every secret with rotation configured (every page of ListSecrets)
  --function ARN   only the secrets this function rotates (its ARN or its name); alone, it
                   lists them like --all
  --login          also log in to the databases, read-only, as the function would
  --repair         fix a stuck AWSPENDING where that is safe (implies --login); without it,
                   the report says what --repair would do
  --json           print one JSON document instead of the table

Problems: stuck-pending, rotation-disabled, overdue, invalid-secret, current-login-failed,
master-unreadable, clone-drift. Repairs (stuck-pending only): removed-stale-pending (AWSCURRENT
still logs in), completed-rotation (only AWSPENDING logs in: AWSCURRENT moves to it, as
finishSecret would), none (neither logs in: nothing is changed).

Exit status: 0 every audited secret is healthy (after repairs, with --repair); 1 a problem
remains; 2 usage or configuration error; 3 Secrets Manager could not be read for a secret, or a
repair failed (each one is named on stderr); the other secrets are still reported.

The report goes to stdout, logs to stderr (RUST_LOG sets their level). AWS credentials and
Region are found as the AWS CLI finds them. The function's own variables apply with the same
meaning, so set them as the function has them: ROTATION_STRATEGY, TLS_MODE, TLS_EXTRA_CA_FILE,
DB_CONNECT_TIMEOUT_SECS, USERNAME_CHARACTER_LIMIT, SECRETS_MANAGER_ENDPOINT.
";

/// Parses the arguments after the program name.
///
/// # Errors
///
/// A [`UsageError`] saying what is wrong: an unknown command or option, a missing value, or a
/// `doctor` that names no secrets.
pub fn parse<I>(arguments: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    let mut arguments = arguments.into_iter().map(Into::into);
    match arguments.next().as_deref() {
        None | Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("--version" | "-V") => Ok(Command::Version),
        Some("doctor") => doctor(arguments),
        Some(other) => Err(UsageError(format!(
            "unknown command {other:?}: the command is doctor"
        ))),
    }
}

/// The options after `doctor`.
fn doctor(mut arguments: impl Iterator<Item = String>) -> Result<Command, UsageError> {
    let mut options = Options::default();
    while let Some(argument) = arguments.next() {
        let (flag, inline) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (argument, None),
        };
        let mut value = |name: &str, what: &str| -> Result<String, UsageError> {
            let value = inline.clone().or_else(|| arguments.next());
            match value {
                Some(v) if !v.trim().is_empty() && !v.starts_with("--") => Ok(v),
                Some(v) if v.starts_with("--") => Err(UsageError(format!(
                    "{name} needs {what}, not the option {v:?}"
                ))),
                _ => Err(UsageError(format!("{name} needs {what}"))),
            }
        };
        let switch = |on: &mut bool| {
            if inline.is_some() {
                return Err(UsageError(format!("{flag} takes no value")));
            }
            *on = true;
            Ok(())
        };
        match flag.as_str() {
            "--secret" => options
                .secrets
                .push(value("--secret", "a secret's name or ARN")?),
            "--function" => {
                let function = value("--function", "a function's ARN or name")?;
                if options.function.replace(function).is_some() {
                    return Err(UsageError("--function is given twice".to_owned()));
                }
            }
            "--all" => switch(&mut options.all)?,
            "--login" => switch(&mut options.login)?,
            "--repair" => switch(&mut options.repair)?,
            "--json" => switch(&mut options.json)?,
            "--help" | "-h" => return Ok(Command::Help),
            other if other.starts_with('-') => {
                return Err(UsageError(format!("unknown option {other:?} for doctor")));
            }
            other => {
                return Err(UsageError(format!(
                    "unexpected argument {other:?}: name a secret with --secret"
                )));
            }
        }
    }
    if options.secrets.is_empty() && !options.all && options.function.is_none() {
        return Err(UsageError(
            "doctor needs secrets to audit: --secret ID (repeatable), --all, or --function ARN"
                .to_owned(),
        ));
    }
    options.login |= options.repair;
    Ok(Command::Doctor(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        match parse(args.iter().copied()) {
            Ok(Command::Doctor(options)) => options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn usage(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e) => e.to_string(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_interface_as_written() {
        let o = options(&[
            "doctor",
            "--secret",
            "prod/app",
            "--secret=arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf",
            "--function",
            "rotator",
            "--repair",
            "--json",
        ]);
        assert_eq!(
            o.secrets,
            [
                "prod/app",
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:x-AbCdEf"
            ]
        );
        assert_eq!(o.function.as_deref(), Some("rotator"));
        assert!(
            o.repair && o.login && o.json && !o.all,
            "--repair implies --login"
        );
        assert!(!o.lists());
        let o = options(&["doctor", "--all", "--login"]);
        assert!(o.all && o.login && !o.repair && !o.json && o.lists());
        assert!(options(&["doctor", "--function=arn:aws:lambda:x"]).lists());
    }

    #[test]
    fn help_and_version() {
        for args in [
            &[][..],
            &["--help"],
            &["-h"],
            &["help"],
            &["doctor", "--help"],
            &["doctor", "--secret", "x", "-h"],
        ] {
            assert_eq!(parse(args.iter().copied()), Ok(Command::Help), "{args:?}");
        }
        assert_eq!(parse(["--version"]), Ok(Command::Version));
        for word in [
            "doctor",
            "--secret",
            "--all",
            "--function",
            "--login",
            "--repair",
            "--json",
        ] {
            assert!(HELP.contains(word), "{word}");
        }
        for code in [
            "stuck-pending",
            "rotation-disabled",
            "overdue",
            "invalid-secret",
            "current-login-failed",
            "master-unreadable",
            "clone-drift",
            "removed-stale-pending",
            "completed-rotation",
        ] {
            assert!(HELP.contains(code), "{code}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (args, expected) in [
            (&["rotate"][..], "unknown command \"rotate\""),
            (&["doctor"], "doctor needs secrets to audit"),
            (&["doctor", "--login"], "doctor needs secrets to audit"),
            (
                &["doctor", "--secret"],
                "--secret needs a secret's name or ARN",
            ),
            (
                &["doctor", "--secret", ""],
                "--secret needs a secret's name or ARN",
            ),
            (&["doctor", "--secret", "--all"], "not the option \"--all\""),
            (&["doctor", "--secret="], "--secret needs"),
            (
                &["doctor", "--all", "--verbose"],
                "unknown option \"--verbose\"",
            ),
            (&["doctor", "prod/app"], "name a secret with --secret"),
            (&["doctor", "--all", "--json=yes"], "--json takes no value"),
            (
                &["doctor", "--function", "a", "--function", "b"],
                "--function is given twice",
            ),
        ] {
            let message = usage(args);
            assert!(message.contains(expected), "{args:?}: {message}");
            assert!(message.ends_with("(db-secret-rotator --help shows the usage)"));
        }
    }
}
