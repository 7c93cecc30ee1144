//! The Redis rotator (engine `redis`) against a real Redis 7: the stack's (ACL file, TLS and
//! plaintext ports) and servers the tests start themselves (no ACL file; an ACL file that cannot
//! be saved). Dual-password rotations by the master, single-user rotations, refusals, TLS
//! choices and hostile input.

use db_secret_rotator::Config;
use db_secret_rotator::config::TlsMode;
use serde_json::{Value, json};

use crate::support::redis::*;
use crate::support::*;

/// A dual-password secret for `user`, mastered by `masterarn`.
fn dual_secret(redis: &RedisStack, user: &str, password: &str, masterarn: &str) -> Value {
    let mut secret = redis_secret(redis, user, password);
    secret["masterarn"] = json!(masterarn);
    secret["rotation_strategy"] = json!("dual-password");
    secret
}

/// A user with [`APP_RULES`], its dual-password secret and the master's, in the emulator.
struct Case {
    user: RedisUser,
    password: String,
    secret: Value,
    arn: String,
    client: aws_sdk_secretsmanager::Client,
}

async fn dual_case(stack: &Stack, redis: &RedisStack, prefix: &str) -> Case {
    let client = sm_client().await;
    let name = unique(prefix);
    let password = fixture_password();
    let user = RedisUser::create(stack, redis, &name, &password, APP_RULES).await;
    let master = create_secret(&client, &redis_admin_secret(redis)).await;
    let secret = dual_secret(redis, &name, &password, &master);
    let arn = create_secret(&client, &secret).await;
    Case {
        user,
        password,
        secret,
        arn,
        client,
    }
}

#[tokio::test]
async fn dual_password_three_rotations_keep_the_user_and_its_rules() {
    let (stack, redis) = require_redis!();
    let case = dual_case(stack, redis, "rdual").await;
    let name = case.user.name.clone();
    let rules = case.user.rules(stack, redis).await;
    let function = Function::new(stack).await;
    let mut passwords = vec![case.password.clone()];
    for round in 1..=3 {
        let token = token();
        start_rotation(&case.client, &case.arn, &token).await;
        function.rotate(&case.arn, &token).await.unwrap();
        let current = value(&case.client, &case.arn, "AWSCURRENT").await;
        let now = current["password"].as_str().unwrap().to_owned();
        let previous = value(&case.client, &case.arn, "AWSPREVIOUS").await;
        assert_eq!(previous["password"], passwords[round - 1].as_str());
        passwords.push(now.clone());

        // Current and previous log in; the one before them does not.
        redis_login(stack, redis, &name, &now).await.unwrap();
        redis_login(stack, redis, &name, &passwords[round - 1])
            .await
            .unwrap();
        if round > 1 {
            assert_eq!(
                redis_login(stack, redis, &name, &passwords[round - 2]).await,
                Err("WRONGPASS".into()),
                "round {round}: the password before previous"
            );
        }
        // Exactly those two hashes, saved to the ACL file; every other rule as it was.
        let mut expected = vec![acl_hash(&now), acl_hash(&passwords[round - 1])];
        expected.sort();
        assert_eq!(case.user.hashes(stack, redis).await, expected, "{round}");
        let saved = case.user.saved_line(redis).expect("saved");
        assert!(
            expected.iter().all(|h| saved.contains(&format!("#{h}"))),
            "round {round}: the ACL file lacks a hash"
        );
        assert_eq!(case.user.rules(stack, redis).await, rules, "round {round}");
        // Only the password changed in the secret, and no second user exists.
        let mut secret = case.secret.clone();
        secret["password"] = json!(now);
        assert_eq!(current, secret);
        let clone = acl(stack, redis, &["GETUSER", &format!("{name}_clone")]).await;
        assert_eq!(clone, ::redis::Value::Nil);
    }
    let calls = function.app.store.calls.lock().unwrap().clone();
    assert_eq!(calls["DescribeSecret"], 12, "{calls:?}");
    case.user.drop(stack, redis).await;
}

#[tokio::test]
async fn both_passwords_log_in_between_set_secret_and_finish_secret_and_replays_change_nothing() {
    let (stack, redis) = require_redis!();
    let case = dual_case(stack, redis, "rbetween").await;
    let function = Function::new(stack).await;
    let token = token();
    start_rotation(&case.client, &case.arn, &token).await;
    for step in ["createSecret", "setSecret"] {
        function.invoke(step, &case.arn, &token).await.unwrap();
    }
    let pending = pending_password(&case.client, &case.arn, &token).await;
    let name = &case.user.name;
    redis_login(stack, redis, name, &case.password)
        .await
        .unwrap();
    redis_login(stack, redis, name, &pending).await.unwrap();
    // Every step again, then the whole rotation: nothing changes but the labels at the end.
    let hashes = case.user.hashes(stack, redis).await;
    for step in ["createSecret", "setSecret", "testSecret"] {
        let before = snapshot(&case.client, &case.arn).await;
        function.invoke(step, &case.arn, &token).await.unwrap();
        assert_eq!(snapshot(&case.client, &case.arn).await, before, "{step}");
        assert_eq!(case.user.hashes(stack, redis).await, hashes, "{step}");
    }
    function.rotate(&case.arn, &token).await.unwrap();
    assert_eq!(case.user.hashes(stack, redis).await, hashes);
    redis_login(stack, redis, name, &case.password)
        .await
        .unwrap();
    case.user.drop(stack, redis).await;
}

#[tokio::test]
async fn single_user_where_the_account_may_set_its_own_password() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let name = unique("rself");
    let password = fixture_password();
    let rules = [
        "~app:*",
        "-@all",
        "+ping",
        "+acl|setuser",
        "+acl|save",
        "+multi",
        "+exec",
        "+discard",
    ];
    let user = RedisUser::create(stack, redis, &name, &password, &rules).await;
    let before = user.rules(stack, redis).await;
    let arn = create_secret(&client, &redis_secret(redis, &name, &password)).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let function = Function::new(stack).await;
    function.rotate(&arn, &token).await.unwrap();
    let new = current_password(&client, &arn).await;
    redis_login(stack, redis, &name, &new).await.unwrap();
    assert_eq!(
        redis_login(stack, redis, &name, &password).await,
        Err("WRONGPASS".into())
    );
    assert_eq!(user.hashes(stack, redis).await, [acl_hash(&new)]);
    assert_eq!(user.rules(stack, redis).await, before);
    // It could not read the configuration, so it saved the change with it.
    let saved = user.saved_line(redis).expect("saved");
    assert!(saved.contains(&acl_hash(&new)) && !saved.contains(&acl_hash(&password)));
    user.drop(stack, redis).await;
}

#[tokio::test]
async fn single_user_without_the_permission_says_it_needs_a_master() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let name = unique("rnoperm");
    let password = fixture_password();
    let user = RedisUser::create(stack, redis, &name, &password, APP_RULES).await;
    let arn = create_secret(&client, &redis_secret(redis, &name, &password)).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let function = Function::new(stack).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("NOPERM") && text.contains("dual-password") && text.contains("masterarn"),
        "{text}"
    );
    assert_eq!(user.hashes(stack, redis).await, [acl_hash(&password)]);
    redis_login(stack, redis, &name, &password).await.unwrap();
    user.drop(stack, redis).await;
}

/// Stages a rotation of a new secret holding `secret` and runs createSecret, then setSecret
/// unless `failing_step` is createSecret; returns the failing step's error.
async fn first_error(
    function: &Function,
    client: &aws_sdk_secretsmanager::Client,
    secret: &Value,
    failing_step: &str,
) -> db_secret_rotator::Error {
    let arn = create_secret(client, secret).await;
    let token = token();
    start_rotation(client, &arn, &token).await;
    for step in ["createSecret", "setSecret"] {
        let result = function.invoke(step, &arn, &token).await;
        if step == failing_step {
            return result.expect_err(failing_step);
        }
        result.unwrap();
    }
    unreachable!("{failing_step} is createSecret or setSecret")
}

#[tokio::test]
async fn refusals_change_nothing() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    let function = Function::new(stack).await;
    let case = dual_case(stack, redis, "rrefuse").await;
    let name = case.user.name.clone();
    let mut wrong_master = redis_admin_secret(redis);
    wrong_master["password"] = json!("not-the-admin-password");
    let wrong_master = create_secret(&client, &wrong_master).await;
    let mut far_master = redis_admin_secret(redis);
    far_master["host"] = json!("localhost");
    let far_master = create_secret(&client, &far_master).await;
    let nopass_name = unique("rnopass");
    let nopass_rules = ["nopass", "+ping"];
    let nopass = RedisUser::create(stack, redis, &nopass_name, "unused-pw", &nopass_rules).await;

    let with = |f: &dyn Fn(&mut Value)| {
        let mut secret = case.secret.clone();
        f(&mut secret);
        secret
    };
    let cases = [
        (
            "alternating users",
            with(&|s| s["rotation_strategy"] = json!("alternating-users")),
            "createSecret",
            "InvalidSecret",
            "use dual-password",
        ),
        (
            "masterarn missing",
            with(&|s| {
                s.as_object_mut().unwrap().remove("masterarn");
            }),
            "createSecret",
            "InvalidSecret",
            "masterarn key is missing",
        ),
        (
            "master password wrong",
            with(&|s| s["masterarn"] = json!(wrong_master)),
            "setSecret",
            "LoginFailed",
            "master",
        ),
        (
            "master on another host",
            with(&|s| s["masterarn"] = json!(far_master)),
            "setSecret",
            "IdentityMismatch",
            "master host localhost",
        ),
        (
            "current password wrong",
            with(&|s| s["password"] = json!("not-the-password")),
            "setSecret",
            "LoginFailed",
            "current",
        ),
        (
            "a nopass user",
            with(&|s| {
                s["username"] = json!(nopass_name);
                s["password"] = json!("any-password-works");
            }),
            "setSecret",
            "DatabaseError",
            "nopass",
        ),
    ];
    for (what, secret, failing_step, error_type, needle) in cases {
        let err = first_error(&function, &client, &secret, failing_step).await;
        assert_eq!(err.error_type(), error_type, "{what}: {err}");
        assert!(err.to_string().contains(needle), "{what}: {err}");
        assert_eq!(
            case.user.hashes(stack, redis).await,
            [acl_hash(&case.password)],
            "{what}"
        );
        assert!(nopass.hashes(stack, redis).await.is_empty(), "{what}");
    }
    redis_login(stack, redis, &name, &case.password)
        .await
        .unwrap();
    case.user.drop(stack, redis).await;
    nopass.drop(stack, redis).await;
}

#[tokio::test]
async fn tls_choices_follow_ssl_and_tls_mode() {
    let (stack, redis) = require_redis!();
    let name = unique("rtls");
    let password = fixture_password();
    let user = RedisUser::create(stack, redis, &name, &password, APP_RULES).await;
    let tls = redis_secret(redis, &name, &password);
    let mut plain = tls.clone();
    plain["port"] = json!(redis.plain_port);
    let trusted = rotators_trusting(&stack.test_ca, TlsMode::VerifyFull);
    let code = |result: Result<(), db_secret_rotator::Error>| result.unwrap_err().to_string();

    login(&trusted, &tls, "arn:rtls").await.unwrap();
    // ssl: true on the plaintext port fails; ssl: false reaches it, but AUTH would carry the
    // password in cleartext: refused unless ALLOW_CLEARTEXT_PASSWORDS says otherwise.
    assert!(code(login(&trusted, &plain, "arn:rtls").await).contains("logging in"));
    plain["ssl"] = json!("false");
    assert!(code(login(&trusted, &plain, "arn:rtls").await).contains("ALLOW_CLEARTEXT_PASSWORDS"));
    let cleartext = |mode| {
        rotators_with(
            &stack.test_ca,
            Config {
                tls_mode: mode,
                allow_cleartext_passwords: true,
                ..Config::default()
            },
        )
    };
    login(&cleartext(TlsMode::VerifyFull), &plain, "arn:rtls")
        .await
        .unwrap();
    // Without ssl, verify-full never falls back; prefer does, with a warning, where cleartext
    // is allowed.
    plain.as_object_mut().unwrap().remove("ssl");
    login(&trusted, &plain, "arn:rtls").await.unwrap_err();
    let prefer = rotators_trusting(&stack.test_ca, TlsMode::Prefer);
    assert!(code(login(&prefer, &plain, "arn:rtls").await).contains("ALLOW_CLEARTEXT_PASSWORDS"));
    let secret_id = unique("arn:redis-prefer");
    login(&cleartext(TlsMode::Prefer), &plain, &secret_id)
        .await
        .unwrap();
    assert!(
        logs()
            .lines()
            .any(|l| l.contains(&secret_id) && l.contains("retrying in plaintext")),
        "the downgrade is logged"
    );
    // An untrusted CA fails; a wrong password is refused by the server and never retried.
    let untrusted = rotators_trusting(&stack.other_ca, TlsMode::Prefer);
    let mut tls_only = tls.clone();
    tls_only["ssl"] = json!(true);
    assert!(code(login(&untrusted, &tls_only, "arn:rtls").await).contains("UnknownIssuer"));
    let mut wrong = tls.clone();
    wrong["password"] = json!("wrong-password");
    assert!(code(login(&prefer, &wrong, "arn:rtls").await).contains("WRONGPASS"));
    // tls_server_name is the name verified; TCP still goes to host.
    let mut named = tls.clone();
    named["tls_server_name"] = json!("localhost");
    login(&trusted, &named, "arn:rtls").await.unwrap();
    named["tls_server_name"] = json!("db.example.com");
    assert!(code(login(&trusted, &named, "arn:rtls").await).contains("not valid for name"));
    user.drop(stack, redis).await;
}

#[tokio::test]
async fn hostile_passwords_and_user_names() {
    let (stack, redis) = require_redis!();
    let client = sm_client().await;
    // Every punctuation character AWS may generate, in the password and around the user name.
    let name = format!("{}{PUNCTUATION}", unique("rh"));
    let password = format!("{}{PUNCTUATION}", fixture_password());
    register_password(&password);
    let user = RedisUser::create(stack, redis, &name, &password, APP_RULES).await;
    let rules = user.rules(stack, redis).await;
    let master = create_secret(&client, &redis_admin_secret(redis)).await;
    let arn = create_secret(&client, &dual_secret(redis, &name, &password, &master)).await;
    let mut function = Function::new(stack).await;
    function.generate_every_punctuation();
    let token = token();
    start_rotation(&client, &arn, &token).await;
    function.rotate(&arn, &token).await.unwrap();
    let new = current_password(&client, &arn).await;
    assert!(new.ends_with(PUNCTUATION));
    redis_login(stack, redis, &name, &new).await.unwrap();
    redis_login(stack, redis, &name, &password).await.unwrap();
    assert_eq!(user.rules(stack, redis).await, rules);
    user.drop(stack, redis).await;
}

/// A user on a server of the test's own, its dual-password secret (mastered by that server's
/// admin) and a staged rotation: the client, user name, password, secret ARN and token.
async fn spawned_case(
    server: &SpawnedRedis,
    prefix: &str,
) -> (
    aws_sdk_secretsmanager::Client,
    String,
    String,
    String,
    String,
) {
    let client = sm_client().await;
    let name = unique(prefix);
    let password = fixture_password();
    server.create_user(&name, &password).await;
    let master = create_secret(&client, &server.secret("dsr_admin", &server.admin_password)).await;
    let mut secret = server.secret(&name, &password);
    secret["masterarn"] = json!(master);
    secret["rotation_strategy"] = json!("dual-password");
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    (client, name, password, arn, token)
}

#[tokio::test]
async fn without_an_acl_file_the_change_lives_in_memory_and_a_warning_says_so() {
    let (stack, _) = require_redis!();
    let server = SpawnedRedis::start(false).await;
    let (client, name, password, arn, token) = spawned_case(&server, "rmem").await;
    // The spawned server listens in plaintext on loopback.
    Function::allowing_cleartext(stack)
        .await
        .rotate(&arn, &token)
        .await
        .unwrap();
    let new = current_password(&client, &arn).await;
    server.connect(&name, &new).await.unwrap();
    server.connect(&name, &password).await.unwrap();
    assert!(
        logs().lines().any(|l| l.contains(&name)
            && l.contains("WARN")
            && l.contains("does not survive a restart")),
        "the in-memory change is announced"
    );
}

#[tokio::test]
async fn a_failed_save_is_undone_and_the_same_token_then_completes() {
    let (stack, _) = require_redis!();
    let server = SpawnedRedis::start(true).await;
    let (client, name, password, arn, token) = spawned_case(&server, "rsave").await;
    // The spawned server listens in plaintext on loopback.
    let function = Function::allowing_cleartext(stack).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    let pending = pending_password(&client, &arn, &token).await;

    // The ACL file's directory is gone: ACL SAVE fails after ACL SETUSER ran.
    let acl_dir = server.acl_dir.clone().unwrap();
    std::fs::remove_dir_all(&acl_dir).unwrap();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "DatabaseError", "{err}");
    assert!(
        err.to_string().contains("saving the ACL file") && err.to_string().contains("undone"),
        "{err}"
    );
    server.connect(&name, &password).await.unwrap();
    assert_eq!(
        server.connect(&name, &pending).await.err().as_deref(),
        Some("WRONGPASS")
    );

    // With the directory back, the service's retry completes the rotation and saves it.
    std::fs::create_dir_all(&acl_dir).unwrap();
    function.rotate(&arn, &token).await.unwrap();
    server.connect(&name, &pending).await.unwrap();
    server.connect(&name, &password).await.unwrap();
    let saved = std::fs::read_to_string(acl_dir.join("users.acl")).unwrap();
    assert!(saved.contains(&acl_hash(&pending)) && saved.contains(&acl_hash(&password)));
}
