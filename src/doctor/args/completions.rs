//! Shell completion scripts, written from the command line's own tables ([`super::FLAGS`],
//! [`super::COMMANDS`]): `db-secret-rotator completions bash|zsh|fish`.

use std::fmt::Write as _;
use std::str::FromStr;

use super::{COMMANDS, FLAGS};

/// A shell that `completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// bash, with the bash-completion package or `source`d from `~/.bashrc`.
    Bash,
    /// zsh, as a `_db-secret-rotator` file on `$fpath`.
    Zsh,
    /// fish, as `~/.config/fish/completions/db-secret-rotator.fish`.
    Fish,
}

impl FromStr for Shell {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        match name {
            "bash" => Ok(Shell::Bash),
            "zsh" => Ok(Shell::Zsh),
            "fish" => Ok(Shell::Fish),
            _ => Err(()),
        }
    }
}

/// The program the scripts complete.
const PROGRAM: &str = "db-secret-rotator";

/// The shells `completions` knows, for its own completion.
const SHELLS: &str = "bash zsh fish";

impl Shell {
    /// The completion script.
    pub fn script(self) -> String {
        match self {
            Shell::Bash => bash(),
            Shell::Zsh => zsh(),
            Shell::Fish => fish(),
        }
    }
}

fn bash() -> String {
    let commands: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
    let mut options: Vec<String> = FLAGS.iter().map(|s| format!("--{}", s.long)).collect();
    options.push("--help".to_owned());
    let mut values = String::new();
    for spec in FLAGS {
        if let Some(value) = &spec.value {
            // A value with no examples is free text: offer nothing rather than options.
            let _ = writeln!(
                values,
                "                --{}) COMPREPLY=($(compgen -W \"{}\" -- \"$cur\")); return ;;",
                spec.long,
                value.examples.join(" ")
            );
        }
    }
    format!(
        "# bash completion for {PROGRAM}: {PROGRAM} completions bash
_db_secret_rotator() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} prev=${{COMP_WORDS[COMP_CWORD-1]}}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W \"{commands} --help --version\" -- \"$cur\"))
        return
    fi
    case ${{COMP_WORDS[1]}} in
        doctor)
            case $prev in
{values}            esac
            COMPREPLY=($(compgen -W \"{options}\" -- \"$cur\"))
            ;;
        completions)
            ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W \"{SHELLS}\" -- \"$cur\"))
            ;;
    esac
}}
complete -F _db_secret_rotator {PROGRAM}
",
        commands = commands.join(" "),
        options = options.join(" "),
    )
}

/// Text inside a zsh `'…'` spec, and inside its `[…]` description.
fn zsh_quote(text: &str) -> String {
    text.replace('\'', "'\\''")
        .replace('[', "\\[")
        .replace(']', "\\]")
        .replace(':', "\\:")
}

fn zsh() -> String {
    let commands: Vec<String> = COMMANDS
        .iter()
        .map(|(name, what)| format!("'{name}:{}'", zsh_quote(what)))
        .collect();
    let mut specs = String::new();
    for spec in FLAGS {
        let repeat = if spec.repeatable { "*" } else { "" };
        let help = zsh_quote(&spec.summary());
        let _ = match &spec.value {
            Some(value) => writeln!(
                specs,
                "                '{repeat}--{}=[{help}]:{}:{}' \\",
                spec.long,
                value.placeholder,
                if value.examples.is_empty() {
                    " ".to_owned()
                } else {
                    format!("({})", value.examples.join(" "))
                }
            ),
            None => writeln!(
                specs,
                "                '{repeat}--{}[{help}]' \\",
                spec.long
            ),
        };
    }
    format!(
        "#compdef {PROGRAM}
# zsh completion for {PROGRAM}: {PROGRAM} completions zsh > \"${{fpath[1]}}/_{PROGRAM}\"
_db_secret_rotator() {{
    local curcontext=$curcontext state line
    _arguments -C \\
        '(- 1 *)'{{-h,--help}}'[print the help]' \\
        '(- 1 *)'{{-V,--version}}'[print the version]' \\
        '1: :->command' \\
        '*:: :->argument'
    case $state in
        command)
            local -a commands
            commands=({commands})
            _describe -t commands 'command' commands
            ;;
        argument)
            case $words[1] in
            doctor)
                _arguments \\
{specs}                '(- *)'{{-h,--help}}'[print the help]'
                ;;
            completions)
                _arguments '1:shell:({SHELLS})'
                ;;
            esac
            ;;
    esac
}}
_db_secret_rotator \"$@\"
",
        commands = commands.join(" "),
    )
}

/// Text inside a fish `'…'` string.
fn fish_quote(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\'', "\\'")
}

fn fish() -> String {
    let mut script = format!(
        "# fish completion for {PROGRAM}: {PROGRAM} completions fish > ~/.config/fish/completions/{PROGRAM}.fish
complete -c {PROGRAM} -f
complete -c {PROGRAM} -n __fish_use_subcommand -s h -l help -d 'print the help'
complete -c {PROGRAM} -n __fish_use_subcommand -s V -l version -d 'print the version'
"
    );
    for (name, what) in COMMANDS {
        let _ = writeln!(
            script,
            "complete -c {PROGRAM} -n __fish_use_subcommand -a {name} -d '{}'",
            fish_quote(what)
        );
    }
    let doctor = "-n '__fish_seen_subcommand_from doctor'";
    for spec in FLAGS {
        let help = fish_quote(&spec.summary());
        let _ = match &spec.value {
            Some(value) if value.examples.is_empty() => writeln!(
                script,
                "complete -c {PROGRAM} {doctor} -l {} -r -d '{help}'",
                spec.long
            ),
            Some(value) => writeln!(
                script,
                "complete -c {PROGRAM} {doctor} -l {} -x -a '{}' -d '{help}'",
                spec.long,
                value.examples.join(" ")
            ),
            None => writeln!(
                script,
                "complete -c {PROGRAM} {doctor} -l {} -d '{help}'",
                spec.long
            ),
        };
    }
    let _ = writeln!(
        script,
        "complete -c {PROGRAM} {doctor} -s h -l help -d 'print the help'\n\
         complete -c {PROGRAM} -n '__fish_seen_subcommand_from completions' -a '{SHELLS}'"
    );
    script
}
