//! The command line: raw arguments, split by `lexopt`, become a [`Command`] whose [`Options`] are
//! checked before anything runs. The options are one table, [`FLAGS`]: the parser matches its
//! rows, and `--help` and the shell completion scripts (`completions`) are written from it, so
//! the three cannot disagree.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use lexopt::{Arg, Parser};

use super::repair::SETTLED;

mod completions;

pub use completions::Shell;

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

/// What the binary's own command line asks for: a [`Command`], which the scheduled audit's event
/// can carry too, or a shell's completion script, which only a shell asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    /// A command, as [`parse`] returns it.
    Run(Command),
    /// `completions SHELL`: the completion script for that shell, on stdout.
    Completions(Shell),
}

/// The options of `doctor`.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// `--settled-after DURATION`: how old a stuck version must be before `--repair` removes its
    /// `AWSPENDING` label (default one hour).
    pub settled_after: Duration,
    /// `--json`: one JSON document instead of the table.
    pub json: bool,
}

impl Default for Options {
    /// No secret, no switch, and the one-hour settle time.
    fn default() -> Self {
        Options {
            secrets: Vec::new(),
            all: false,
            function: None,
            login: false,
            repair: false,
            settled_after: SETTLED,
            json: false,
        }
    }
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

/// Which option a row of [`FLAGS`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flag {
    Secret,
    All,
    Function,
    Login,
    Repair,
    SettledAfter,
    Json,
}

/// The value an option takes.
#[derive(Debug)]
pub(super) struct Value {
    /// Its placeholder in the usage text: `ID`.
    pub placeholder: &'static str,
    /// What is missing when it is missing: "a secret's name or ARN".
    pub what: &'static str,
    /// Values a shell may offer, if the set is small (none: anything goes).
    pub examples: &'static [&'static str],
}

/// One option of `doctor`.
#[derive(Debug)]
pub(super) struct Spec {
    pub flag: Flag,
    /// The long name, without its dashes.
    pub long: &'static str,
    pub value: Option<Value>,
    /// May be given more than once.
    pub repeatable: bool,
    /// Its help, one or more lines; the completion scripts show its first clause
    /// ([`Spec::summary`]).
    pub help: &'static [&'static str],
}

impl Spec {
    /// The help up to its first `;`, on one line: what a completion menu shows.
    pub(super) fn summary(&self) -> String {
        let help = self.help.join(" ");
        match help.split_once("; ") {
            Some((first, _)) => first.to_owned(),
            None => help,
        }
    }
}

/// The options of `doctor`, in the order `--help` lists them.
pub(super) const FLAGS: &[Spec] = &[
    Spec {
        flag: Flag::Secret,
        long: "secret",
        value: Some(Value {
            placeholder: "ID",
            what: "a secret's name or ARN",
            examples: &[],
        }),
        repeatable: true,
        help: &["a secret's name or ARN; repeat it for several secrets"],
    },
    Spec {
        flag: Flag::All,
        long: "all",
        value: None,
        repeatable: false,
        help: &["every secret with rotation configured (every page of ListSecrets)"],
    },
    Spec {
        flag: Flag::Function,
        long: "function",
        value: Some(Value {
            placeholder: "ARN",
            what: "a function's ARN or name",
            examples: &[],
        }),
        repeatable: false,
        help: &[
            "only the secrets this function rotates (its ARN or its name); alone, it",
            "lists them like --all",
        ],
    },
    Spec {
        flag: Flag::Login,
        long: "login",
        value: None,
        repeatable: false,
        help: &["also log in to the databases, read-only, as the function would"],
    },
    Spec {
        flag: Flag::Repair,
        long: "repair",
        value: None,
        repeatable: false,
        help: &[
            "fix a stuck AWSPENDING where that is safe (implies --login); without it,",
            "the report says what --repair would do",
        ],
    },
    Spec {
        flag: Flag::SettledAfter,
        long: "settled-after",
        value: Some(Value {
            placeholder: "DURATION",
            what: "a duration such as 10m or 1h",
            examples: &["10m", "30m", "1h", "2h"],
        }),
        repeatable: false,
        help: &[
            "how old a stuck version must be before --repair removes its AWSPENDING",
            "label (default 1h, the least 1m: 10m, 1h30m, 90s); a younger version may",
            "belong to a rotation still running: its four steps each run within the",
            "function's Timeout, so keep this above four times that",
        ],
    },
    Spec {
        flag: Flag::Json,
        long: "json",
        value: None,
        repeatable: false,
        help: &["print one JSON document instead of the table"],
    },
];

/// The commands, and what each is for (the completion scripts show it).
pub(super) const COMMANDS: &[(&str, &str)] = &[
    (
        "doctor",
        "audit the rotation of secrets; repair a stuck AWSPENDING",
    ),
    (
        "completions",
        "print the completion script for bash, zsh or fish",
    ),
    ("help", "print this help"),
];

/// The shortest `--settled-after`: below it, a rotation's own steps are surely still running.
const SHORTEST_SETTLE: Duration = Duration::from_secs(60);

/// The usage text of `--help`, written from [`FLAGS`] (`{}` prints it).
pub const HELP: Help = Help;

/// The usage text; see [`HELP`].
#[derive(Debug, Clone, Copy)]
pub struct Help;

/// The column where an option's help starts.
const HELP_COLUMN: usize = 19;

impl fmt::Display for Help {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "db-secret-rotator rotates database credentials stored in AWS Secrets Manager.\n\n\
             Run without arguments inside AWS Lambda it is the function. Run with arguments it is\n\
             the operator's tool:\n"
        )?;
        writeln!(f, "  {}", wrap(&synopsis(), SYNOPSIS_WIDTH, "      "))?;
        writeln!(f, "  db-secret-rotator completions bash|zsh|fish")?;
        writeln!(f, "  db-secret-rotator --help")?;
        writeln!(f, "  db-secret-rotator --version\n")?;
        writeln!(
            f,
            "doctor audits the rotation of secrets and repairs a stuck AWSPENDING. It is read-only \
             unless\n--repair is given, and it never changes a database password.\n"
        )?;
        for spec in FLAGS {
            let mut name = format!("  --{}", spec.long);
            if let Some(value) = &spec.value {
                name = format!("{name} {}", value.placeholder);
            }
            let mut lines = spec.help.iter();
            match lines.next() {
                Some(first) if name.len() < HELP_COLUMN => {
                    writeln!(f, "{name:HELP_COLUMN$}{first}")?;
                }
                Some(first) => writeln!(f, "{name}\n{:HELP_COLUMN$}{first}", "")?,
                None => writeln!(f, "{name}")?,
            }
            for line in lines {
                writeln!(f, "{:HELP_COLUMN$}{line}", "")?;
            }
        }
        f.write_str(
            "
Problems: stuck-pending, rotation-disabled, overdue, invalid-secret, current-login-failed,
master-unreadable, clone-drift. Repairs (stuck-pending only): removed-stale-pending (AWSCURRENT
still logs in, and the stuck version is older than the settle time, one hour unless
--settled-after says otherwise), completed-rotation (only AWSPENDING logs in: AWSCURRENT moves
to it, as finishSecret would), none (neither logs in: nothing is changed).

Exit status: 0 every audited secret is healthy (after repairs, with --repair); 1 a problem
remains; 2 usage or configuration error; 3 Secrets Manager could not be read for a secret, or a
repair failed (each one is named on stderr); the other secrets are still reported.

The report goes to stdout, logs to stderr (RUST_LOG sets their level), and so does a line when
an endpoint is slow to answer and a call is being retried. AWS credentials and Region are found
as the AWS CLI finds them. The function's own variables apply with the same meaning, so set
them as the function has them: ROTATION_STRATEGY, TLS_MODE, TLS_EXTRA_CA_FILE,
DB_CONNECT_TIMEOUT_SECS, USERNAME_CHARACTER_LIMIT, SECRETS_MANAGER_ENDPOINT.
",
        )
    }
}

/// The widest line of the synopsis in `--help`.
const SYNOPSIS_WIDTH: usize = 96;

/// `text` broken at spaces into lines of at most `width` characters, the later ones indented.
fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
        } else if !line.is_empty() && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

/// `db-secret-rotator doctor [--secret ID]... [--all] …`, from [`FLAGS`].
pub(super) fn synopsis() -> String {
    let mut line = "db-secret-rotator doctor".to_owned();
    for spec in FLAGS {
        line.push_str(" [--");
        line.push_str(spec.long);
        if let Some(value) = &spec.value {
            line.push(' ');
            line.push_str(value.placeholder);
        }
        line.push(']');
        if spec.repeatable {
            line.push_str("...");
        }
    }
    line
}

/// Parses the arguments after the program name, as the scheduled audit's event gives them too.
///
/// # Errors
///
/// A [`UsageError`] saying what is wrong: an unknown command or option, a missing value, or a
/// `doctor` that names no secrets.
pub fn parse<I>(arguments: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    match parse_command_line(arguments)? {
        CommandLine::Run(command) => Ok(command),
        CommandLine::Completions(_) => Err(UsageError(
            "unknown command \"completions\": the command is doctor".to_owned(),
        )),
    }
}

/// Parses the binary's own arguments, after the program name: [`parse`]'s commands and
/// `completions SHELL`.
///
/// # Errors
///
/// As [`parse`]; also an unknown or missing shell.
pub fn parse_command_line<I>(arguments: I) -> Result<CommandLine, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = Parser::from_args(arguments);
    let first = parser.next().map_err(usage)?;
    let command = match first {
        None | Some(Arg::Long("help") | Arg::Short('h')) => Command::Help,
        Some(Arg::Long("version") | Arg::Short('V')) => Command::Version,
        Some(Arg::Value(word)) => match word.to_str() {
            Some("help") => Command::Help,
            Some("doctor") => doctor(&mut parser)?,
            Some("completions") => return completions(&mut parser).map(CommandLine::Completions),
            _ => {
                return Err(UsageError(format!(
                    "unknown command {:?}: the commands are doctor and completions",
                    word.to_string_lossy()
                )));
            }
        },
        Some(other) => return Err(usage(other.unexpected())),
    };
    Ok(CommandLine::Run(command))
}

/// `completions SHELL`.
fn completions(parser: &mut Parser) -> Result<Shell, UsageError> {
    let mut shell = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Arg::Value(word) if shell.is_none() => {
                let word = word.to_string_lossy();
                shell = Some(word.parse::<Shell>().map_err(|()| {
                    UsageError(format!(
                        "unknown shell {word:?} for completions: bash, zsh or fish"
                    ))
                })?);
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    shell.ok_or_else(|| UsageError("completions needs a shell: bash, zsh or fish".to_owned()))
}

/// The options after `doctor`.
fn doctor(parser: &mut Parser) -> Result<Command, UsageError> {
    let mut options = Options::default();
    let mut settled_after = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        let long = match arg {
            Arg::Long("help") | Arg::Short('h') => return Ok(Command::Help),
            Arg::Long(long) => long.to_owned(),
            Arg::Short(short) => {
                return Err(UsageError(format!(
                    "unknown option \"-{short}\" for doctor"
                )));
            }
            Arg::Value(word) => {
                return Err(UsageError(format!(
                    "unexpected argument {:?}: name a secret with --secret",
                    word.to_string_lossy()
                )));
            }
        };
        let Some(spec) = FLAGS.iter().find(|spec| spec.long == long) else {
            return Err(UsageError(format!(
                "unknown option \"--{long}\" for doctor"
            )));
        };
        match spec.flag {
            Flag::Secret => options.secrets.push(value(parser, spec)?),
            Flag::Function => {
                let function = value(parser, spec)?;
                if options.function.replace(function).is_some() {
                    return Err(UsageError("--function is given twice".to_owned()));
                }
            }
            Flag::SettledAfter => {
                let text = value(parser, spec)?;
                let duration = parse_duration(&text).ok_or_else(|| {
                    UsageError(format!(
                        "--settled-after needs {DURATION_FORMAT}, not {text:?}"
                    ))
                })?;
                if duration < SHORTEST_SETTLE {
                    return Err(UsageError(format!(
                        "--settled-after {text} is too short: a rotation's steps may still be \
                         running; at least 1m"
                    )));
                }
                if settled_after.replace(duration).is_some() {
                    return Err(UsageError("--settled-after is given twice".to_owned()));
                }
            }
            Flag::All => options.all = true,
            Flag::Login => options.login = true,
            Flag::Repair => options.repair = true,
            Flag::Json => options.json = true,
        }
    }
    if options.secrets.is_empty() && !options.all && options.function.is_none() {
        return Err(UsageError(
            "doctor needs secrets to audit: --secret ID (repeatable), --all, or --function ARN"
                .to_owned(),
        ));
    }
    options.login |= options.repair;
    if let Some(duration) = settled_after {
        options.settled_after = duration;
    }
    Ok(Command::Doctor(options))
}

/// What `--settled-after` needs, for its error.
const DURATION_FORMAT: &str = "a duration such as 10m, 1h or 1h30m (units s, m, h)";

/// The value of the option `spec`: present, not empty, not another option, valid Unicode.
fn value(parser: &mut Parser, spec: &Spec) -> Result<String, UsageError> {
    let what = spec.value.as_ref().map_or("a value", |v| v.what);
    let name = spec.long;
    let value = match parser.value() {
        Ok(value) => value,
        Err(lexopt::Error::MissingValue { .. }) => {
            return Err(UsageError(format!("--{name} needs {what}")));
        }
        Err(e) => return Err(usage(e)),
    };
    let value = value
        .into_string()
        .map_err(|_| UsageError(format!("the value of --{name} is not valid Unicode")))?;
    if value.starts_with("--") {
        return Err(UsageError(format!(
            "--{name} needs {what}, not the option {value:?}"
        )));
    }
    if value.trim().is_empty() {
        return Err(UsageError(format!("--{name} needs {what}")));
    }
    Ok(value)
}

/// `lexopt`'s complaint, in this command line's words.
fn usage(error: lexopt::Error) -> UsageError {
    UsageError(match error {
        lexopt::Error::UnexpectedValue { option, .. } => format!("{option} takes no value"),
        lexopt::Error::UnexpectedOption(option) => format!("unknown option {option:?}"),
        lexopt::Error::UnexpectedArgument(word) => {
            format!("unexpected argument {:?}", word.to_string_lossy())
        }
        lexopt::Error::NonUnicodeValue(_) => "an argument is not valid Unicode".to_owned(),
        other => other.to_string(),
    })
}

/// `90s`, `10m`, `1h`, `1h30m`: one or more whole numbers, each with its unit (`s`, `m`, `h`).
fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(digit.into())?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    match number {
        None if !text.is_empty() => Some(Duration::from_secs(total)),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
