//! Hostile input: a table of malformed events and secrets sent to the real binary through the
//! Lambda Runtime API emulator, each with its expected `errorType` and a check that nothing was
//! written; and injection attempts through `username`, `host`, `dbname` and `masterarn` that must
//! leave every other account untouched. (The parsers' property tests live beside them, in
//! `src/event.rs` and `src/credentials.rs`.)

use std::time::Duration;

use aws_sdk_secretsmanager::primitives::Blob;
use db_secret_rotator::rotators::mysql::PasswordPlugin;
use db_secret_rotator::rotators::redis::password_hash;
use serde_json::{Value, json};

use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::*;

on_every_server!(injection_leaves_other_accounts_untouched);

/// What the Lambda runtime reports for a payload that is not JSON: its deserialisation layer
/// answers before the handler runs, with the type name as `errorType`. Secrets Manager always
/// sends JSON, so only a hand-made invocation meets it.
const UNPARSEABLE: &str = "&lambda_runtime::deserializer::DeserializeError";

/// A valid secret nobody can log in with (port 9 refuses at once); `Zq` marks values that no
/// error may echo.
fn base() -> Value {
    json!({
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": 9,
        "username": "nobody",
        "password": "Zq-hostile-password-0",
        "dbname": "postgres",
    })
}

fn with(key: &str, value: Value) -> String {
    let mut secret = base();
    secret[key] = value;
    secret.to_string()
}

fn without(key: &str) -> String {
    let mut secret = base();
    secret.as_object_mut().unwrap().remove(key);
    secret.to_string()
}

enum Input {
    /// Raw event bytes; `{arn}` and `{token}` name the canary secret and its staged token.
    Event(String),
    /// Event bytes that are not UTF-8.
    Bytes(Vec<u8>),
    /// The secret's `SecretString` (rotation staged), then `createSecret`.
    Current(String),
    /// A binary secret, then `createSecret`.
    Binary(Vec<u8>),
    /// A valid current secret; the token's pending version gets this text; then `step`.
    Pending(String, &'static str),
}

fn cases() -> Vec<(&'static str, Input, &'static str)> {
    use Input::*;
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let mut huge = base();
    huge["padding"] = json!("Zq".repeat(32 * 1024));
    huge["engine"] = json!("postgress");
    let mut nested = base();
    nested["junk"] = json!({"a": [1, {"b": [null, {"c": "Zq"}]}], "d": {"e": {"f": []}}});
    nested["engine"] = json!({"name": "postgres"});
    let mut alternating = base();
    alternating["rotation_strategy"] = json!("alternating-users");
    let mut long_clone = alternating.clone();
    long_clone["masterarn"] = json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:m");
    long_clone["username"] = json!("u".repeat(64 * 1024));
    let valid = base().to_string();
    let mut other_user = base();
    other_user["username"] = json!("someone-else");
    let mut other_host = base();
    other_host["host"] = json!("localhost");
    let event = |step: &str| {
        format!(r#"{{"Step":{step},"SecretId":"{{arn}}","ClientRequestToken":"{{token}}"}}"#)
    };
    vec![
        // Events.
        ("event: not JSON", Event("Zq not json".into()), UNPARSEABLE),
        ("event: invalid UTF-8", Bytes(b"{\"Step\":\"\xff\xfeZq\"}".to_vec()), UNPARSEABLE),
        ("event: lone surrogate", Event(event(r#""\ud800Zq""#)), UNPARSEABLE),
        ("event: 10,000 nested arrays", Event(format!(r#"{{"Extra":{}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000))), UNPARSEABLE),
        ("event: truncated", Event(r#"{"Step":"createSecret","SecretId":"#.into()), UNPARSEABLE),
        ("event: array", Event(r#"["Zq"]"#.into()), "InvalidEvent"),
        ("event: null", Event("null".into()), "InvalidEvent"),
        ("event: string", Event(r#""Zq""#.into()), "InvalidEvent"),
        ("event: empty object", Event("{}".into()), "InvalidEvent"),
        ("event: Step missing", Event(r#"{"SecretId":"{arn}","ClientRequestToken":"{token}"}"#.into()), "InvalidEvent"),
        ("event: Step a number", Event(event("5")), "InvalidEvent"),
        ("event: Step empty", Event(event(r#""""#)), "InvalidEvent"),
        ("event: Step with NUL", Event(event(r#""create\u0000SecretZq""#)), "InvalidEvent"),
        ("event: Step with a newline", Event(event(r#""createSecret\nZq""#)), "InvalidEvent"),
        ("event: Step not ASCII", Event(event(r#""créateSecretZq""#)), "InvalidEvent"),
        ("event: Step an object", Event(event(r#"{"Zq":1}"#)), "InvalidEvent"),
        ("event: SecretId an array", Event(r#"{"Step":"createSecret","SecretId":["Zq"],"ClientRequestToken":"{token}"}"#.into()), "InvalidEvent"),
        ("event: SecretId null", Event(r#"{"Step":"createSecret","SecretId":null,"ClientRequestToken":"{token}"}"#.into()), "InvalidEvent"),
        ("event: token an object", Event(r#"{"Step":"createSecret","SecretId":"{arn}","ClientRequestToken":{"Zq":true}}"#.into()), "InvalidEvent"),
        ("event: token with DEL", Event(r#"{"Step":"createSecret","SecretId":"{arn}","ClientRequestToken":"Zq\u007f"}"#.into()), "InvalidEvent"),
        ("event: RotationToken a number", Event(r#"{"Step":"createSecret","SecretId":"{arn}","ClientRequestToken":"{token}","RotationToken":7}"#.into()), "InvalidEvent"),
        ("event: python step name", Event(event(r#""create_secret""#)), "InvalidStep"),
        ("event: PascalCase step", Event(event(r#""CreateSecret""#)), "InvalidStep"),
        ("event: 100 KB step", Event(event(&format!("\"{}\"", "x".repeat(100 * 1024)))), "InvalidStep"),
        ("event: junk beside an unknown step", Event(r#"{"Step":"bogus","SecretId":"{arn}","ClientRequestToken":"{token}","Extra":{"a":[1,{"b":null}]},"RotationToken":null}"#.into()), "InvalidStep"),
        ("event: 100 KB token", Event(format!(r#"{{"Step":"createSecret","SecretId":"{{arn}}","ClientRequestToken":"{}"}}"#, "t".repeat(100 * 1024))), "UnknownVersion"),
        ("event: unknown secret", Event(r#"{"Step":"createSecret","SecretId":"arn:aws:secretsmanager:us-east-1:123456789012:secret:dsr-missing","ClientRequestToken":"{token}"}"#.into()), "SecretsManagerError"),
        // Current secrets (createSecret).
        ("secret: not JSON", Current("Zq not json".into()), "InvalidSecret"),
        ("secret: array", Current(r#"["Zq"]"#.into()), "InvalidSecret"),
        ("secret: string", Current(r#""Zq""#.into()), "InvalidSecret"),
        ("secret: null", Current("null".into()), "InvalidSecret"),
        ("secret: number", Current("42".into()), "InvalidSecret"),
        ("secret: empty object", Current("{}".into()), "InvalidSecret"),
        ("secret: trailing garbage", Current(format!("{valid} Zq")), "InvalidSecret"),
        ("secret: lone surrogate", Current(valid.replace("nobody", "\\ud800Zq")), "InvalidSecret"),
        ("secret: 200 nested arrays", Current(valid.replacen('{', &format!("{{\"junk\":{deep},"), 1)), "InvalidSecret"),
        ("secret: engine missing", Current(without("engine")), "InvalidSecret"),
        ("secret: engine Postgres", Current(with("engine", json!("Postgres"))), "InvalidSecret"),
        ("secret: engine postgresql", Current(with("engine", json!("postgresql"))), "InvalidSecret"),
        ("secret: engine with a space", Current(with("engine", json!("mysql "))), "InvalidSecret"),
        ("secret: engine with a tab", Current(with("engine", json!("post\tgres"))), "InvalidSecret"),
        ("secret: engine with NUL", Current(with("engine", json!("postgres\u{0}"))), "InvalidSecret"),
        ("secret: engine a number", Current(with("engine", json!(5))), "InvalidSecret"),
        ("secret: engine an object, nested junk", Current(nested.to_string()), "InvalidSecret"),
        ("secret: duplicate engine, last wrong", Current(valid.replacen('}', r#","engine":"oracleZq"}"#, 1)), "InvalidSecret"),
        ("secret: host missing", Current(without("host")), "InvalidSecret"),
        ("secret: host a number", Current(with("host", json!(42))), "InvalidSecret"),
        ("secret: host empty", Current(with("host", json!(""))), "InvalidSecret"),
        ("secret: username missing", Current(without("username")), "InvalidSecret"),
        ("secret: username null", Current(with("username", Value::Null)), "InvalidSecret"),
        ("secret: username an array", Current(with("username", json!(["Zq"]))), "InvalidSecret"),
        ("secret: password missing", Current(without("password")), "InvalidSecret"),
        ("secret: password a number", Current(with("password", json!(12_345_678))), "InvalidSecret"),
        ("secret: port 0", Current(with("port", json!(0))), "InvalidSecret"),
        ("secret: port 70000", Current(with("port", json!(70_000))), "InvalidSecret"),
        ("secret: port -1", Current(with("port", json!(-1))), "InvalidSecret"),
        ("secret: port 1.5", Current(with("port", json!(1.5))), "InvalidSecret"),
        ("secret: port \"54x\"", Current(with("port", json!("54xZq"))), "InvalidSecret"),
        ("secret: port true", Current(with("port", json!(true))), "InvalidSecret"),
        ("secret: dbname a number", Current(with("dbname", json!(5))), "InvalidSecret"),
        ("secret: tls_server_name an object", Current(with("tls_server_name", json!({"Zq": 1}))), "InvalidSecret"),
        ("secret: strategy typo", Current(with("rotation_strategy", json!("alternating"))), "InvalidSecret"),
        ("secret: strategy case", Current(with("rotation_strategy", json!("Single-User"))), "InvalidSecret"),
        ("secret: strategy a number", Current(with("rotation_strategy", json!(1))), "InvalidSecret"),
        ("secret: alternating without masterarn", Current(alternating.to_string()), "InvalidSecret"),
        ("secret: masterarn a number", Current(with("masterarn", json!(42))), "InvalidSecret"),
        ("secret: 64 KB, engine typo", Current(huge.to_string()), "InvalidSecret"),
        ("secret: 64 KB username, alternating", Current(long_clone.to_string()), "InvalidSecret"),
        ("secret: binary", Binary(b"\xff\xfe{\"engine\":\"postgres\"}Zq".to_vec()), "InvalidSecret"),
        // Pending versions.
        ("pending: not JSON (setSecret)", Pending("Zq not json".into(), "setSecret"), "InvalidSecret"),
        ("pending: password missing (setSecret)", Pending(without("password"), "setSecret"), "InvalidSecret"),
        ("pending: engine typo (testSecret)", Pending(with("engine", json!("postgress")), "testSecret"), "InvalidSecret"),
        ("pending: another user (setSecret)", Pending(other_user.to_string(), "setSecret"), "IdentityMismatch"),
        ("pending: another host (setSecret)", Pending(other_host.to_string(), "setSecret"), "IdentityMismatch"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_and_secrets_through_the_runtime() {
    let stack = require_stack!();
    let client = sm_client().await;
    let process = FunctionProcess::spawn(stack, "hostile", &[]).await;
    let canary = create_secret(&client, &base()).await;
    let canary_token = token();
    start_rotation(&client, &canary, &canary_token).await;
    let canary_before = snapshot(&client, &canary).await;

    let cases = cases();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (name, input, expected) in &cases {
        let (outcome, arn) = match input {
            Input::Event(text) => {
                let body = text
                    .replace("{arn}", &canary)
                    .replace("{token}", &canary_token);
                (
                    process.api.invoke(body, Duration::from_secs(20)).await,
                    None,
                )
            }
            Input::Bytes(bytes) => (
                process
                    .api
                    .invoke(bytes.clone(), Duration::from_secs(20))
                    .await,
                None,
            ),
            Input::Current(_) | Input::Binary(_) | Input::Pending(..) => {
                let mut create = client.create_secret().name(unique("dsr-test/hostile"));
                create = match input {
                    Input::Current(text) => {
                        register_secret(text);
                        create.secret_string(text)
                    }
                    Input::Binary(bytes) => create.secret_binary(Blob::new(bytes.clone())),
                    _ => create.secret_string(base().to_string()),
                };
                let arn = create.send().await.unwrap().arn.unwrap();
                let token = token();
                start_rotation(&client, &arn, &token).await;
                let step = match input {
                    Input::Pending(text, step) => {
                        put_pending(&client, &arn, &token, text).await;
                        *step
                    }
                    _ => "createSecret",
                };
                let before = snapshot(&client, &arn).await;
                let event = json!({"Step": step, "SecretId": arn, "ClientRequestToken": token});
                let outcome = process
                    .api
                    .invoke_json(&event, Duration::from_secs(20))
                    .await;
                if snapshot(&client, &arn).await != before {
                    failures.push(format!("{name}: something was written"));
                }
                (outcome, Some(arn))
            }
        };
        let got = outcome.error_type().unwrap_or("success").to_owned();
        let message = match &outcome {
            Outcome::Error { message, .. } | Outcome::InitError(message) => message.clone(),
            Outcome::Response(_) => String::new(),
        };
        if got != *expected {
            failures.push(format!(
                "{name}: expected {expected}, got {got}: {message:.300}"
            ));
        }
        // Nothing of a rejected value is echoed (an unknown step name is, by design). The
        // secret's ARN is named on purpose; its random suffix may itself hold the marker.
        let echoed = match &arn {
            Some(arn) => message.replace(arn.as_str(), ""),
            None => message.clone(),
        };
        if got != "InvalidStep" && echoed.contains("Zq") {
            failures.push(format!(
                "{name}: the error echoes the input: {message:.300}"
            ));
        }
        assert_no_password_in(&message, name);
        if let Some(arn) = arn {
            if got.starts_with("Invalid") && !message.contains(&arn) && got != "InvalidEvent" {
                failures.push(format!("{name}: the error does not name the secret"));
            }
        }
        lines.push(format!("{name:<45} {got}"));
    }
    assert_eq!(
        snapshot(&client, &canary).await,
        canary_before,
        "an event case wrote to the canary secret"
    );
    let log = process.logs();
    assert_no_password_in(&log, "the function's log stream");
    let text = format!(
        "== hostile input through the runtime: {} cases ==\n{}\n",
        cases.len(),
        lines.join("\n")
    );
    report("hostile-input.txt", &text);
    assert!(cases.len() >= 40);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Names crafted to break out of quoting, with their account as the function must treat it.
fn injection_names(server: Server, victim: &str, n: &str) -> Vec<String> {
    match server {
        Server::Postgres => vec![
            format!("i'; ALTER ROLE \"{victim}\" PASSWORD 'pwned'; --{n}"),
            format!("i\"; DROP ROLE \"{victim}\"; --{n}"),
            format!("i\\'; ALTER ROLE {victim} NOLOGIN; /*{n}"),
            format!("i$$; ALTER ROLE {victim} PASSWORD $$p{n}"),
        ],
        Server::Mariadb => vec![
            format!("i'@'%'; SET PASSWORD FOR `{victim}`@`%`=PASSWORD('p'); -- {n}"),
            format!("i`; DROP USER `{victim}`; #{n}"),
            format!("i\\'; DROP USER '{victim}'; /*{n}"),
            format!("i\"; ALTER USER {victim} ACCOUNT LOCK; --{n}"),
        ],
    }
}

/// Every other account's stored verifier or hash, and whether it still logs in.
async fn others(stack: &Stack, victims: &[(TestUser, String)], admin: &TestUser) -> Vec<String> {
    let mut state = vec![admin.verifier(stack).await];
    for (victim, _) in victims {
        state.push(victim.verifier(stack).await);
    }
    state
}

async fn injection_leaves_other_accounts_untouched(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    // Victims: two accounts the injections aim at, plus the master (admin) account.
    let mut victims = Vec::new();
    for _ in 0..2 {
        let password = fixture_password();
        let name = unique("victim");
        victims.push((stack.create_user(server, &name, &password).await, password));
    }
    let admin = match server {
        Server::Postgres => TestUser::Pg(PgUser {
            name: stack.pg_admin_user.clone(),
            port: stack.pg_port,
        }),
        Server::Mariadb => TestUser::My(mariadb::MyUser {
            name: stack.mariadb_admin_user.clone(),
            host: "%".to_owned(),
        }),
    };
    let before = others(stack, &victims, &admin).await;
    let victim = victims[0].0.name().to_owned();
    let victim_secret = create_secret(&client, &stack.secret(server, &victim, &victims[0].1)).await;
    let function = Function::new(stack).await;
    let mut lines = Vec::new();
    let n = unique("n");
    let n = n.rsplit('_').next().unwrap().to_owned();

    // Usernames: real accounts with hostile names rotate like any other.
    for name in injection_names(server, &victim, &n) {
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let arn = create_secret(&client, &stack.secret(server, &name, &password)).await;
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function
            .rotate(&arn, &token)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let current = value(&client, &arn, "AWSCURRENT").await;
        stack
            .login(server, &name, current["password"].as_str().unwrap())
            .await
            .unwrap();
        lines.push(format!(
            "username {name:?}: rotated, only that account changed"
        ));
        user.drop(stack).await;
    }

    // Values that reach no account: each fails, typed, and changes nothing.
    let mut hostile: Vec<(&str, Value, bool)> = vec![
        (
            "username",
            json!(format!("i\u{0}'; DROP ROLE {victim}; --")),
            false,
        ),
        (
            "host",
            json!(format!("127.0.0.1'; DROP ROLE \"{victim}\"; --")),
            false,
        ),
        ("host", json!("127.0.0.1\u{0}evil"), false),
        (
            "dbname",
            json!(format!(
                "postgres'; ALTER ROLE \"{victim}\" PASSWORD 'x'; --"
            )),
            false,
        ),
        (
            "dbname",
            json!(format!("x`; DROP USER `{victim}`; -- \\")),
            false,
        ),
        (
            "masterarn",
            json!(format!(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:x'; DROP ROLE \"{victim}\"; --"
            )),
            true,
        ),
        ("masterarn", json!(victim_secret), true),
    ];
    if server == Server::Mariadb {
        hostile[0].1 = json!(format!("i\u{0}'; DROP USER `{victim}`; --"));
    }
    for (key, hostile_value, alternating) in hostile {
        let name = unique("inj");
        let password = fixture_password();
        let user = stack.create_user(server, &name, &password).await;
        let mut secret = stack.secret(server, &name, &password);
        if alternating {
            secret["rotation_strategy"] = json!("alternating-users");
        }
        secret[key] = hostile_value.clone();
        let arn = create_secret(&client, &secret).await;
        let token = token();
        start_rotation(&client, &arn, &token).await;
        let result = function.rotate(&arn, &token).await;
        let error_type = match &result {
            Ok(()) => "success",
            Err(e) => e.error_type(),
        };
        assert!(
            [
                "LoginFailed",
                "DatabaseError",
                "InvalidSecret",
                "SecretsManagerError",
                "IdentityMismatch"
            ]
            .contains(&error_type),
            "{key} = {hostile_value}: {result:?}"
        );
        lines.push(format!("{key} {hostile_value}: {error_type}"));
        let verifier = user.verifier(stack).await;
        stack.login(server, &name, &password).await.unwrap();
        assert!(!verifier.is_empty());
        user.drop(stack).await;
    }

    assert_eq!(
        others(stack, &victims, &admin).await,
        before,
        "another account changed"
    );
    for (victim, password) in &victims {
        stack.login(server, victim.name(), password).await.unwrap();
    }
    report(
        &format!("hostile-injection-{server:?}.txt").to_lowercase(),
        &format!("== injection, {server:?} ==\n{}\n", lines.join("\n")),
    );
    for (victim, _) in victims {
        victim.drop(stack).await;
    }
}

/// The leak check itself: a registered password is found raw and JSON-escaped (as log lines
/// carry it), and so are the values servers store for it; the report masks what it found.
#[test]
fn the_leak_check_finds_registered_passwords() {
    let password = format!("Lk-{:016x}-'\\\"", rand::random::<u64>());
    register_password(&password);
    let escaped = serde_json::to_string(&password).unwrap();
    for text in [
        format!("plain {password} text"),
        format!(r#"{{"fields":{{"message":{escaped}}}}}"#),
        format!("USING '{}'", PasswordPlugin::Native.stored_value(&password)),
        format!(
            "USING '{}'",
            PasswordPlugin::Ed25519.stored_value(&password)
        ),
        format!("#{}", password_hash(&password)),
    ] {
        let caught = std::panic::catch_unwind(|| assert_no_password_in(&text, "a test text"));
        let message = caught.expect_err("the leak check missed a password");
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("<PASSWORD>"), "{message}");
        assert!(
            !message.contains(&password),
            "the report shows the password"
        );
    }
    assert_no_password_in("nothing to see", "a clean text");
}
