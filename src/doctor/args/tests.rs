use super::*;

fn options(args: &[&str]) -> Options {
    match parse(args.iter().copied()) {
        Ok(Command::Doctor(options)) => options,
        other => panic!("{args:?}: {other:?}"),
    }
}

fn usage(args: &[&str]) -> String {
    match parse_command_line(args.iter().copied()) {
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
    assert_eq!(o.settled_after, SETTLED, "one hour unless asked");
    let o = options(&["doctor", "--all", "--login"]);
    assert!(o.all && o.login && !o.repair && !o.json && o.lists());
    assert!(options(&["doctor", "--function=arn:aws:lambda:x"]).lists());
    assert_eq!(Options::default().settled_after, Duration::from_secs(3_600));
}

#[test]
fn the_settle_time() {
    for (text, seconds) in [
        ("10m", 600),
        ("1h", 3_600),
        ("90s", 90),
        ("1h30m", 5_400),
        ("2h", 7_200),
        ("60s", 60),
    ] {
        let o = options(&["doctor", "--all", "--repair", "--settled-after", text]);
        assert_eq!(o.settled_after, Duration::from_secs(seconds), "{text}");
        let inline = format!("--settled-after={text}");
        let o = options(&["doctor", "--all", inline.as_str()]);
        assert_eq!(o.settled_after, Duration::from_secs(seconds), "{text}");
    }
    for (text, expected) in [
        ("10", "needs a duration such as 10m"),
        ("m", "needs a duration"),
        ("1d", "needs a duration"),
        ("-5m", "needs a duration"),
        ("--5m", "not the option"),
        ("1.5h", "needs a duration"),
        ("99999999999999999999h", "needs a duration"),
        ("59s", "too short"),
        ("0m", "too short"),
    ] {
        let message = usage(&["doctor", "--all", "--settled-after", text]);
        assert!(message.contains(expected), "{text}: {message}");
    }
    let message = usage(&[
        "doctor",
        "--all",
        "--settled-after",
        "1h",
        "--settled-after",
        "2h",
    ]);
    assert!(message.contains("given twice"), "{message}");
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
    assert_eq!(parse(["-V"]), Ok(Command::Version));
    let help = HELP.to_string();
    for spec in FLAGS {
        assert!(help.contains(&format!("--{}", spec.long)), "{}", spec.long);
        for line in spec.help {
            assert!(help.contains(line), "{line}");
        }
    }
    assert_eq!(
        synopsis(),
        "db-secret-rotator doctor [--secret ID]... [--all] [--function ARN] [--login] [--repair] \
         [--settled-after DURATION] [--json]"
    );
    assert!(help.contains(
        "  db-secret-rotator doctor [--secret ID]... [--all] [--function ARN] [--login] [--repair]\n      \
         [--settled-after DURATION] [--json]\n"
    ), "{help}");
    assert!(help.contains("one hour unless"), "{help}");
    assert!(help.contains("(default 1h"), "{help}");
    assert!(help.contains("completions bash|zsh|fish"));
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
        assert!(help.contains(code), "{code}");
    }
    for line in help.lines() {
        assert!(line.chars().count() <= 100, "a long line: {line}");
    }
}

#[test]
fn completions_command() {
    for (name, shell) in [
        ("bash", Shell::Bash),
        ("zsh", Shell::Zsh),
        ("fish", Shell::Fish),
    ] {
        assert_eq!(
            parse_command_line(["completions", name]),
            Ok(CommandLine::Completions(shell))
        );
        let script = shell.script();
        for spec in FLAGS {
            assert!(
                script.contains(&format!("--{}", spec.long))
                    || script.contains(&format!("-l {}", spec.long)),
                "{name}: {}",
                spec.long
            );
        }
        for (command, _) in COMMANDS {
            assert!(script.contains(command), "{name}: {command}");
        }
        assert!(script.contains("10m 30m 1h 2h"), "{name}");
    }
    for (args, expected) in [
        (&["completions"][..], "completions needs a shell"),
        (&["completions", "tcsh"], "unknown shell \"tcsh\""),
        (
            &["completions", "bash", "zsh"],
            "unexpected argument \"zsh\"",
        ),
        (&["completions", "--all"], "unknown option \"--all\""),
    ] {
        let message = usage(args);
        assert!(message.contains(expected), "{args:?}: {message}");
    }
    // The scheduled audit's arguments never reach it.
    assert!(parse(["completions", "bash"]).is_err());
}

#[test]
fn mistakes_are_named() {
    for (args, expected) in [
        (&["rotate"][..], "unknown command \"rotate\""),
        (&["--verbose"], "unknown option \"--verbose\""),
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
        (&["doctor", "--all", "-v"], "unknown option \"-v\""),
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

#[test]
fn arguments_that_are_not_unicode() {
    use std::os::unix::ffi::OsStringExt;
    let bad = OsString::from_vec(vec![b'p', 0xff]);
    let message = parse_command_line([OsString::from("doctor"), "--secret".into(), bad])
        .unwrap_err()
        .to_string();
    assert!(message.contains("not valid Unicode"), "{message}");
}
