//! The MySQL-family rotator against the stack's MariaDB 10.11, driven directly through
//! [`Engines`]: logins and TLS choices, single-user password changes (exact account, escaping in
//! both `sql_mode`s), and the alternating-users clone (host, grants, `REQUIRE`).

use db_secret_rotator::config::TlsMode;
use db_secret_rotator::credentials::Password;
use db_secret_rotator::rotators::mysql::{account_sql, quote_literal};
use db_secret_rotator::rotators::{
    Account, CloneManagement, Connect, Engines, OwnPassword, Session,
};
use db_secret_rotator::tls::{SystemStore, TlsRoots};
use db_secret_rotator::{Config, Error};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

use crate::support::mariadb::*;
use crate::support::*;

/// Engines trusting the system and Amazon RDS roots only: the test CA is unknown to them.
fn untrusting(mode: TlsMode) -> Engines {
    capture_logs();
    Engines::with_roots(
        &TlsRoots::load(&SystemStore::default(), None).unwrap(),
        &Config {
            tls_mode: mode,
            ..Config::default()
        },
    )
}

/// A password with every character the literal escaper must handle.
fn nasty_password() -> String {
    format!(
        "Pw-{:08x}-'\\\"%_`;\n\r\u{1a}é''\\\\",
        rand::random::<u32>()
    )
}

/// The server's code of a failed login or statement.
fn code(result: Result<(), Error>) -> String {
    match result.unwrap_err() {
        Error::Database { code, .. } | Error::Refused { code, .. } => code,
        other => panic!("expected a database error, got {other}"),
    }
}

/// Log lines (JSON) whose fields include `key` = `value`. Only lines holding the value's JSON text
/// are parsed: the capture holds every test's lines.
fn log_lines_with(key: &str, value: &str) -> Vec<Value> {
    let quoted = serde_json::to_string(value).unwrap();
    logs()
        .lines()
        .filter(|line| line.contains(quoted.as_str()))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["fields"][key].as_str() == Some(value))
        .collect()
}

#[tokio::test]
async fn single_user_changes_exactly_the_authenticated_account() {
    let stack = require_stack!();
    let rotators = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let name = unique("my_su");
    let (pw_any, pw_local) = (nasty_password(), nasty_password());
    let any = MyUser::create(stack, &name, "%", &pw_any, "").await;
    let local = MyUser::create(stack, &name, "127.0.0.1", &pw_local, "").await;
    let any_hash = any.auth_string(stack).await;

    // From 127.0.0.1 the server picks the more specific account.
    let current = db_secret(&mariadb_secret(stack, &name, &pw_local));
    let mut session = rotators
        .connect(&current.login(), "login", &ctx("arn:su"))
        .await
        .unwrap();
    assert_eq!(
        session.account(),
        Account {
            user: name.clone(),
            host: Some("127.0.0.1".to_owned())
        }
    );
    let new = nasty_password();
    session
        .set_own_password(&current.login(), &Password::new(&new), &ctx("arn:su"))
        .await
        .unwrap();
    session.close().await;
    my_login(stack, &name, &new, true)
        .await
        .expect("the new password logs in");
    assert_eq!(my_login(stack, &name, &pw_local, true).await, Err(1045));
    assert_eq!(
        any.auth_string(stack).await,
        any_hash,
        "the '%' account with the same user name kept its password"
    );

    // Without the specific account, the '%' one authenticates and is the one changed.
    local.drop(stack).await;
    let current = db_secret(&mariadb_secret(stack, &name, &pw_any));
    let mut session = rotators
        .connect(&current.login(), "login", &ctx("arn:su"))
        .await
        .unwrap();
    assert_eq!(session.account().host.as_deref(), Some("%"));
    let new = nasty_password();
    session
        .set_own_password(&current.login(), &Password::new(&new), &ctx("arn:su"))
        .await
        .unwrap();
    session.close().await;
    my_login(stack, &name, &new, true).await.unwrap();
    assert_eq!(my_login(stack, &name, &pw_any, true).await, Err(1045));
    assert_ne!(any.auth_string(stack).await, any_hash);
    any.drop(stack).await;
}

/// The escaper against the server's own parser, in both modes: every literal reads back as the
/// original string, and the backslash form is wrong under `NO_BACKSLASH_ESCAPES`.
#[tokio::test]
async fn literals_round_trip_in_both_sql_modes() {
    let stack = require_stack!();
    let value = "a'b\\c\"d\0e\nf\rg\u{1a}h%_`é''\\\\'";
    let mut admin = my_admin(stack).await;
    for (mode, nbe) in [
        ("STRICT_TRANS_TABLES", false),
        ("NO_BACKSLASH_ESCAPES", true),
    ] {
        admin
            .exec_drop("SET SESSION sql_mode = ?", (mode,))
            .await
            .unwrap();
        let back: Option<String> = admin
            .query_first(format!("SELECT {}", quote_literal(value, nbe)))
            .await
            .unwrap();
        assert_eq!(back.as_deref(), Some(value), "sql_mode {mode}");
    }
    let wrong: Result<Option<String>, _> = admin
        .query_first(format!("SELECT {}", quote_literal(value, false)))
        .await;
    assert!(
        !matches!(wrong, Ok(Some(ref v)) if v == value),
        "backslash escapes do not work under NO_BACKSLASH_ESCAPES"
    );
    admin.disconnect().await.unwrap();
}

/// Why passwords are escaped client-side: the server refuses `?` in the password statements.
#[tokio::test]
async fn password_statements_take_no_placeholders() {
    let stack = require_stack!();
    let mut admin = my_admin(stack).await;
    for statement in [
        "ALTER USER `dsr_nobody`@`%` IDENTIFIED BY ?",
        "ALTER USER CURRENT_USER() IDENTIFIED BY ?",
        "CREATE USER IF NOT EXISTS `dsr_nobody`@`%` IDENTIFIED BY ?",
        "SET PASSWORD = PASSWORD(?)",
    ] {
        match admin.exec_drop(statement, ("p",)).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1064, "{statement}"),
            other => panic!("{statement}: {other:?}"),
        }
    }
    admin.disconnect().await.unwrap();
}

#[tokio::test]
async fn require_ssl_account() {
    let stack = require_stack!();
    let rotators = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let name = unique("my_rssl");
    let password = nasty_password();
    let user = MyUser::create(stack, &name, "%", &password, "REQUIRE SSL").await;
    my_login(stack, &name, &password, true).await.unwrap();
    assert_eq!(my_login(stack, &name, &password, false).await, Err(1045));

    let mut value = mariadb_secret(stack, &name, &password);
    login(&rotators, &value, "arn:rssl").await.unwrap();
    value["ssl"] = json!(false);
    assert_eq!(
        code(login(&rotators, &value, "arn:rssl").await),
        "error 1045 (28000)"
    );
    value["ssl"] = json!("TRUE");
    let current = db_secret(&value);
    let mut session = rotators
        .connect(&current.login(), "login", &ctx("arn:rssl"))
        .await
        .unwrap();
    let new = nasty_password();
    session
        .set_own_password(&current.login(), &Password::new(&new), &ctx("arn:rssl"))
        .await
        .unwrap();
    session.close().await;
    my_login(stack, &name, &new, true).await.unwrap();
    user.drop(stack).await;
}

#[tokio::test]
async fn tls_choices() {
    let stack = require_stack!();
    let plain_name = unique("my_tlsp");
    let ssl_name = unique("my_tlsr");
    let password = nasty_password();
    let plain = MyUser::create(stack, &plain_name, "%", &password, "").await;
    let only_tls = MyUser::create(stack, &ssl_name, "%", &password, "REQUIRE SSL").await;
    let plain_secret = mariadb_secret(stack, &plain_name, &password);
    let tls_secret = mariadb_secret(stack, &ssl_name, &password);

    // Verified TLS with the test CA; a REQUIRE SSL account logging in proves the session is TLS.
    let trusted = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    login(&trusted, &tls_secret, "arn:tls").await.unwrap();
    login(&trusted, &plain_secret, "arn:tls").await.unwrap();
    // ssl: false is plaintext, which the REQUIRE SSL account refuses.
    let mut no_tls = tls_secret.clone();
    no_tls["ssl"] = json!("false");
    assert_eq!(
        code(login(&trusted, &no_tls, "arn:tls").await),
        "error 1045 (28000)"
    );

    // An untrusted CA fails under verify-full, although the server accepts plaintext.
    let untrusted = untrusting(TlsMode::VerifyFull);
    let failed = code(login(&untrusted, &plain_secret, "arn:tls").await);
    assert!(
        failed.contains("UnknownIssuer") || failed.contains("certificate"),
        "{failed}"
    );
    // ... and falls back to plaintext under prefer, with a warning naming secret and host.
    let prefer = untrusting(TlsMode::Prefer);
    let secret_id = unique("arn:mariadb-prefer");
    login(&prefer, &plain_secret, &secret_id).await.unwrap();
    let warnings = log_lines_with("secret_id", &secret_id);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["level"], "WARN");
    assert_eq!(warnings[0]["fields"]["host"], stack.mariadb_host.as_str());
    // The fallback is plaintext: the REQUIRE SSL account is refused.
    assert_eq!(
        code(login(&prefer, &tls_secret, "arn:tls").await),
        "error 1045 (28000)"
    );

    // A wrong password is never retried in plaintext, even under prefer.
    let prefer_trusted = rotators_trusting(&stack.test_ca, TlsMode::Prefer);
    let secret_id = unique("arn:mariadb-wrong");
    let mut wrong = plain_secret.clone();
    wrong["password"] = json!("wrong-password");
    assert_eq!(
        code(login(&prefer_trusted, &wrong, &secret_id).await),
        "error 1045 (28000)"
    );
    assert!(log_lines_with("secret_id", &secret_id).is_empty());

    // tls_server_name is the name verified (and sent as SNI); TCP still goes to host.
    let mut named = tls_secret.clone();
    named["tls_server_name"] = json!("localhost");
    login(&trusted, &named, "arn:tls").await.unwrap();
    named["tls_server_name"] = json!("db.example.com");
    let failed = code(login(&trusted, &named, "arn:tls").await);
    assert!(failed.contains("not valid for name"), "{failed}");
    named["tls_server_name"] = json!("not a name!");
    let failed = code(login(&trusted, &named, "arn:tls").await);
    assert!(
        failed.contains("tls_server_name") && !failed.contains("not a name"),
        "{failed}"
    );

    plain.drop(stack).await;
    only_tls.drop(stack).await;
}

/// A `REQUIRE` row of `mysql.user`: ssl_type, cipher, issuer, subject.
async fn require_row(stack: &Stack, user: &str, host: &str) -> (String, String, String, String) {
    let mut admin = my_admin(stack).await;
    let row: Option<(String, String, String, String)> = admin
        .exec_first(
            "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user \
             WHERE User = ? AND Host = ?",
            (user, host),
        )
        .await
        .unwrap();
    admin.disconnect().await.unwrap();
    row.expect("the account exists")
}

#[tokio::test]
async fn alternating_users_clone_follows_the_current_account() {
    let stack = require_stack!();
    let rotators = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let db = unique("dsr_db%x");
    let db_sql = format!("`{db}`");
    my_admin_run(stack, &format!("CREATE DATABASE {db_sql}")).await;
    my_admin_run(stack, &format!("CREATE TABLE {db_sql}.t (x INT)")).await;
    my_admin_run(stack, &format!("INSERT INTO {db_sql}.t VALUES (1)")).await;

    // The original lives at a specific host, with a name that needs quoting.
    let name = unique("my'alt`");
    let clone = format!("{name}_clone");
    let host = "127.0.0.1";
    let password = nasty_password();
    let original = MyUser::create(stack, &name, host, &password, "REQUIRE SSL").await;
    my_admin_run(
        stack,
        &format!("GRANT SELECT ON {db_sql}.* TO {}", original.sql()),
    )
    .await;
    drop_user(stack, &clone, host).await;

    let current_secret = mariadb_secret(stack, &name, &password);
    let session = connect(&rotators, &current_secret, "arn:alt")
        .await
        .unwrap();
    let current = session.account();
    session.close().await;
    assert_eq!(current.host.as_deref(), Some(host));

    let current_db_secret = db_secret(&current_secret);
    let set = |pw: String| {
        let rotators = &rotators;
        let current = &current;
        let current_db_secret = &current_db_secret;
        let pending = db_secret(&mariadb_secret(stack, &clone, &pw));
        async move {
            let mut master = connect(rotators, &mariadb_admin_secret(stack), "arn:alt")
                .await
                .unwrap();
            let result = master
                .set_password_as_master(
                    current,
                    &current_db_secret.login(),
                    &pending.login(),
                    &ctx("arn:alt"),
                )
                .await;
            master.close().await;
            result
        }
    };

    // First rotation: created at the current account's host, with its grants and REQUIRE SSL.
    let pw1 = nasty_password();
    set(pw1.clone()).await.unwrap();
    assert!(auth_string(stack, &clone, host).await.is_some());
    assert!(auth_string(stack, &clone, "%").await.is_none(), "never '%'");
    my_login(stack, &clone, &pw1, true).await.unwrap();
    assert_eq!(
        my_login(stack, &clone, &pw1, false).await,
        Err(1045),
        "REQUIRE SSL copied"
    );
    assert_eq!(require_row(stack, &clone, host).await.0, "ANY");
    my_run_as(stack, &clone, &pw1, &format!("SELECT x FROM {db_sql}.t"))
        .await
        .expect("the clone reads what only the original was granted");
    assert_eq!(
        my_run_as(
            stack,
            &clone,
            &pw1,
            &format!("INSERT INTO {db_sql}.t VALUES (2)")
        )
        .await,
        Err(1142)
    );
    let created = log_lines_with("user", &clone);
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["fields"]["created"], true);

    // Second rotation: the password changes, nothing is created.
    let pw2 = nasty_password();
    set(pw2.clone()).await.unwrap();
    my_login(stack, &clone, &pw2, true).await.unwrap();
    assert_eq!(my_login(stack, &clone, &pw1, true).await, Err(1045));
    let updated = log_lines_with("user", &clone);
    assert_eq!(updated.len(), 2, "{updated:?}");
    assert_eq!(updated[1]["fields"]["created"], false);

    // A grant added to the original later: the existing clone lacks it, so handing the clone
    // over would give it to whoever else controls the clone (docs/protocol.md 5.12). Refused,
    // naming the grant, with nothing changed; once the operator grants the clone the same, the
    // rotation proceeds.
    my_admin_run(
        stack,
        &format!("GRANT INSERT ON {db_sql}.* TO {}", original.sql()),
    )
    .await;
    let err = set(nasty_password()).await.unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert!(
        err.to_string()
            .contains(&format!("it lacks INSERT ON {db_sql}.*")),
        "{err}"
    );
    my_login(stack, &clone, &pw2, true).await.unwrap();
    my_admin_run(
        stack,
        &format!(
            "GRANT INSERT ON {db_sql}.* TO {}",
            account_sql(&clone, host)
        ),
    )
    .await;
    let pw3 = nasty_password();
    set(pw3.clone()).await.unwrap();
    my_run_as(
        stack,
        &clone,
        &pw3,
        &format!("INSERT INTO {db_sql}.t VALUES (3)"),
    )
    .await
    .unwrap();

    // A privilege only the clone holds refuses the rotation (docs/protocol.md 5.12), naming it;
    // nothing is revoked and the password stays. Once the operator revokes it, rotations resume.
    let delete = format!("DELETE ON {db_sql}.* TO {}", account_sql(&clone, host));
    my_admin_run(stack, &format!("GRANT {delete}")).await;
    let err = set(nasty_password()).await.unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert!(
        err.to_string().contains(&format!("DELETE ON {db_sql}.*")),
        "{err}"
    );
    my_login(stack, &clone, &pw3, true).await.unwrap();
    my_admin_run(
        stack,
        &format!("REVOKE {}", delete.replace(" TO ", " FROM ")),
    )
    .await;
    set(pw3.clone()).await.unwrap();

    // A specified REQUIRE is copied value for value, quotes and backslashes included.
    my_admin_run(
        stack,
        &format!(
            "ALTER USER {} REQUIRE SUBJECT {} AND CIPHER 'AES256-SHA'",
            original.sql(),
            quote_literal("/CN=it's a \\ test", false)
        ),
    )
    .await;
    set(nasty_password()).await.unwrap();
    assert_eq!(
        require_row(stack, &clone, host).await,
        require_row(stack, &name, host).await
    );
    assert_eq!(
        require_row(stack, &clone, host).await.3,
        "/CN=it's a \\ test"
    );

    let logged = logs();
    assert!(!logged.contains(&db), "grant text is never logged");
    for pw in [&pw1, &pw2, &pw3] {
        assert!(!logged.contains(pw.as_str()));
    }
    drop_user(stack, &clone, host).await;
    original.drop(stack).await;
    my_admin_run(stack, &format!("DROP DATABASE {db_sql}")).await;
}

#[tokio::test]
async fn password_statement_failures_keep_only_the_error_number() {
    let stack = require_stack!();
    let rotators = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    const SENTINEL: &str = "S3ntinel-'\\-pw";
    let check = |err: Error| {
        let shown = format!("{err} {err:?}");
        assert_eq!(err.error_type(), "DatabaseError", "{shown}");
        assert!(
            !shown.contains(SENTINEL) && !shown.contains("S3ntinel"),
            "{shown}"
        );
        let Error::Database { action, code, .. } = err else {
            unreachable!()
        };
        (action, code)
    };

    // CREATE USER fails: the clone's name is too long for MariaDB (128 characters), its
    // original's is not.
    let base = unique("ml");
    let long_name = format!("{base}{}", "x".repeat(125 - base.len()));
    let long_pw = nasty_password();
    let long = MyUser::create(stack, &long_name, "%", &long_pw, "").await;
    let current = Account {
        user: long_name.clone(),
        host: Some("%".to_owned()),
    };
    let long_secret = db_secret(&mariadb_secret(stack, &long_name, &long_pw));
    let too_long = format!("{}_clone", current.user);
    let pending = db_secret(&mariadb_secret(stack, &too_long, SENTINEL));
    let mut master = connect(&rotators, &mariadb_admin_secret(stack), "arn:fail")
        .await
        .unwrap();
    let err = master
        .set_password_as_master(
            &current,
            &long_secret.login(),
            &pending.login(),
            &ctx("arn:fail"),
        )
        .await
        .unwrap_err();
    master.close().await;
    assert_eq!(
        check(err),
        (
            "creating the alternate user",
            "error 1470 (HY000)".to_owned()
        )
    );
    assert!(auth_string(stack, &too_long, "%").await.is_none());
    long.drop(stack).await;

    // ALTER USER … IDENTIFIED BY fails, after the account statements before it succeeded: a
    // master allowed one update an hour adds the suffix onto an existing clone, whose TLS
    // requirement it sets (the one update), then fails on the password (error 1226).
    let weak_name = unique("my_weak");
    let weak_pw = nasty_password();
    let weak = MyUser::create(
        stack,
        &weak_name,
        "%",
        &weak_pw,
        "WITH MAX_UPDATES_PER_HOUR 1",
    )
    .await;
    my_admin_run(
        stack,
        &format!("GRANT SELECT ON `mysql`.* TO {}", weak.sql()),
    )
    .await;
    my_admin_run(
        stack,
        &format!("GRANT CREATE USER ON *.* TO {}", weak.sql()),
    )
    .await;
    let target_name = unique("my_target");
    let clone_name = format!("{target_name}_clone");
    let target_pw = nasty_password();
    let target = MyUser::create(stack, &target_name, "%", &target_pw, "").await;
    let target_secret = db_secret(&mariadb_secret(stack, &target_name, &target_pw));
    let clone = MyUser::create(stack, &clone_name, "%", &nasty_password(), "").await;
    let before = clone.auth_string(stack).await;
    let pending = db_secret(&mariadb_secret(stack, &clone_name, SENTINEL));
    let current = Account {
        user: target_name.clone(),
        host: Some("%".to_owned()),
    };
    let mut master = connect(
        &rotators,
        &mariadb_secret(stack, &weak_name, &weak_pw),
        "arn:fail",
    )
    .await
    .unwrap();
    let err = master
        .set_password_as_master(
            &current,
            &target_secret.login(),
            &pending.login(),
            &ctx("arn:fail"),
        )
        .await
        .unwrap_err();
    master.close().await;
    assert_eq!(
        check(err),
        ("setting the password", "error 1226 (42000)".to_owned())
    );
    assert_eq!(clone.auth_string(stack).await, before);

    assert!(!logs().contains("S3ntinel"));
    weak.drop(stack).await;
    clone.drop(stack).await;
    target.drop(stack).await;
}
