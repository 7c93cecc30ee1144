//! The dual-password strategy on the SQL servers: MariaDB 10.11, where the master writes both
//! passwords as authentication methods joined by `OR`, and the refusals (PostgreSQL, a MySQL
//! engine name on a MariaDB server, accounts on other plugins, forged or foreign secrets). MySQL 8
//! has no server in the stack: its statements are unit-tested in `src/rotators/mysql/dual.rs`.

use db_secret_rotator::rotators::mysql::quote_literal;
use serde_json::{Value, json};

use crate::support::mariadb::*;
use crate::support::*;

/// `SHOW GRANTS` without the authentication clause, which carries the passwords.
async fn grants_but_passwords(stack: &Stack, user: &str, host: &str) -> Vec<String> {
    show_grants(stack, user, host)
        .await
        .into_iter()
        .map(|line| match line.find(" IDENTIFIED ") {
            Some(start) => {
                let rest = &line[start..];
                let end = [" REQUIRE ", " WITH "]
                    .iter()
                    .filter_map(|clause| rest.find(clause))
                    .min()
                    .unwrap_or(rest.len());
                format!("{}{}", &line[..start], &rest[end..])
            }
            None => line,
        })
        .collect()
}

/// What must not change about an account but its passwords: everything in `global_priv` except
/// the authentication methods and the time they changed.
fn settings(privileges: &Value) -> Value {
    let mut kept = privileges.clone();
    let map = kept.as_object_mut().unwrap();
    for key in [
        "plugin",
        "authentication_string",
        "auth_or",
        "password_last_changed",
    ] {
        map.remove(key);
    }
    kept
}

/// A MariaDB dual-password secret for `user`, mastered by the stack's admin.
async fn dual_secret(
    stack: &Stack,
    client: &aws_sdk_secretsmanager::Client,
    user: &str,
    password: &str,
) -> Value {
    let master = create_secret(client, &mariadb_admin_secret(stack)).await;
    let mut secret = stack.secret(Server::Mariadb, user, password);
    secret["masterarn"] = json!(master);
    secret["rotation_strategy"] = json!("dual-password");
    secret
}

#[tokio::test]
async fn mariadb_three_rotations_keep_the_account_and_everything_but_its_passwords() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("mydual");
    let password = fixture_password();
    let user = MyUser::create(
        stack,
        &name,
        "%",
        &password,
        "REQUIRE SSL WITH MAX_USER_CONNECTIONS 7",
    )
    .await;
    // The same name at another host: the server's account for this client is '%', and only it
    // may change.
    let sibling = MyUser::create(stack, &name, "10.9.%", &fixture_password(), "").await;
    let sibling_hash = sibling.auth_string(stack).await;
    let table = stack.grant_table(Server::Mariadb, &name).await;
    let grants = grants_but_passwords(stack, &name, "%").await;
    let kept = settings(&global_priv(stack, &name, "%").await);
    let original = dual_secret(stack, &client, &name, &password).await;
    let arn = create_secret(&client, &original).await;
    let function = Function::new(stack).await;

    let mut passwords = vec![password];
    for round in 1..=3 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function.rotate(&arn, &token).await.unwrap();
        let current = value(&client, &arn, "AWSCURRENT").await;
        let now = current["password"].as_str().unwrap().to_owned();
        passwords.push(now.clone());
        let previous = &passwords[round - 1];
        assert_eq!(
            value(&client, &arn, "AWSPREVIOUS").await["password"],
            previous.as_str()
        );
        // Current and previous log in and read the table; the password before them is refused.
        for pw in [&now, previous] {
            my_login(stack, &name, pw, true)
                .await
                .unwrap_or_else(|e| panic!("round {round}: error {e}"));
            stack
                .reads(Server::Mariadb, &table, &name, pw)
                .await
                .unwrap();
        }
        if round > 1 {
            assert_eq!(
                my_login(stack, &name, &passwords[round - 2], true).await,
                Err(1045),
                "round {round}: the password before previous"
            );
        }
        // The account: two native methods, and nothing else changed.
        let privileges = global_priv(stack, &name, "%").await;
        assert_eq!(
            auth_plugins(&privileges),
            ["mysql_native_password", "mysql_native_password"]
        );
        assert_eq!(settings(&privileges), kept, "round {round}");
        assert_eq!(grants_but_passwords(stack, &name, "%").await, grants);
        assert_eq!(sibling.auth_string(stack).await, sibling_hash);
        assert!(
            !stack
                .user_exists(Server::Mariadb, &format!("{name}_clone"))
                .await
        );
        let mut expected = original.clone();
        expected["password"] = json!(now);
        assert_eq!(current, expected, "only the password changed");
    }
    stack.drop_table(Server::Mariadb, table).await;
    sibling.drop(stack).await;
    user.drop(stack).await;
}

#[tokio::test]
async fn both_passwords_log_in_between_set_secret_and_finish_secret_and_replays_change_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("mybetween");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let arn = create_secret(
        &client,
        &dual_secret(stack, &client, &name, &password).await,
    )
    .await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let function = Function::new(stack).await;
    for step in ["createSecret", "setSecret"] {
        function.invoke(step, &arn, &token).await.unwrap();
    }
    let stored = user.auth_string(stack).await;
    let pending = pending_password(&client, &arn, &token).await;
    my_login(stack, &name, &password, true).await.unwrap();
    my_login(stack, &name, &pending, true).await.unwrap();
    for step in ["createSecret", "setSecret", "testSecret"] {
        let before = snapshot(&client, &arn).await;
        function.invoke(step, &arn, &token).await.unwrap();
        assert_eq!(snapshot(&client, &arn).await, before, "{step} replayed");
        assert_eq!(user.auth_string(stack).await, stored, "{step} replayed");
    }
    function.rotate(&arn, &token).await.unwrap();
    assert_eq!(user.auth_string(stack).await, stored);
    my_login(stack, &name, &password, true).await.unwrap();
    user.drop(stack).await;
}

#[tokio::test]
async fn ed25519_accounts_keep_their_plugin_and_both_passwords_log_in() {
    let stack = require_stack!();
    if !ed25519_loaded(stack).await {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but MariaDB lacks the ed25519 plugin: run scripts/stack.sh up"
        );
        return;
    }
    let name = unique("my25519");
    let accounts = [(name.clone(), "%".to_owned())];
    dropping_afterwards(stack, &accounts, ed25519_rotations(stack, &name)).await;
}

async fn ed25519_rotations(stack: &Stack, name: &str) {
    let client = sm_client().await;
    let password = fixture_password();
    let methods = format!(
        "VIA ed25519 USING PASSWORD({})",
        quote_literal(&password, false)
    );
    MyUser::create_via(stack, name, "%", &methods).await;
    my_login(stack, name, &password, true).await.unwrap();
    let secret = dual_secret(stack, &client, name, &password).await;
    let arn = create_secret(&client, &secret).await;
    let function = Function::new(stack).await;
    let mut passwords = vec![password];
    for round in 1..=2 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function.rotate(&arn, &token).await.unwrap();
        let now = current_password(&client, &arn).await;
        // The account's two methods hold exactly the keys the server itself derives from the
        // current and previous passwords, so both log in and no other does; and the client signs
        // in with the current one. (mysql_async cannot answer the server's second ed25519
        // challenge, so the other logins are proved by the keys.)
        let privileges = global_priv(stack, name, "%").await;
        assert_eq!(auth_plugins(&privileges), ["ed25519", "ed25519"]);
        let keys = auth_values(&privileges);
        assert_eq!(
            keys,
            [
                server_ed25519_key(stack, &now).await,
                server_ed25519_key(stack, &passwords[round - 1]).await
            ]
        );
        if round > 1 {
            let before = server_ed25519_key(stack, &passwords[round - 2]).await;
            assert!(!keys.contains(&before), "round {round}: the one before");
        }
        my_login(stack, name, &now, true).await.unwrap();
        passwords.push(now);
    }
}

/// Runs `body`, then drops `accounts` even when it panicked: an account whose methods need a
/// second authentication exchange must not outlive its test, since MariaDB fakes unknown users'
/// logins with existing accounts (see `my_login`).
async fn dropping_afterwards(
    stack: &Stack,
    accounts: &[(String, String)],
    body: impl std::future::Future<Output = ()>,
) {
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await;
    for (user, host) in accounts {
        drop_user(stack, user, host).await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The key the server stores for `password` under ed25519, from an account it creates with
/// `USING PASSWORD(…)`.
async fn server_ed25519_key(stack: &Stack, password: &str) -> String {
    let probe = unique("mykey");
    let methods = format!(
        "VIA ed25519 USING PASSWORD({})",
        quote_literal(password, false)
    );
    let account = MyUser::create_via(stack, &probe, "%", &methods).await;
    let key = account.auth_string(stack).await;
    account.drop(stack).await;
    key
}

/// The stored values of the account's methods, in order.
fn auth_values(privileges: &Value) -> Vec<String> {
    let top = privileges["authentication_string"].as_str().unwrap();
    privileges["auth_or"]
        .as_array()
        .map_or_else(
            || vec![top],
            |methods| {
                methods
                    .iter()
                    .map(|m| m["authentication_string"].as_str().unwrap_or(top))
                    .collect()
            },
        )
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Runs createSecret and setSecret for `secret`; setSecret (or createSecret, for `at_create`)
/// must fail with `error_type` naming `needle`.
async fn refused(
    function: &Function,
    client: &aws_sdk_secretsmanager::Client,
    secret: &Value,
    at_create: bool,
    error_type: &str,
    needle: &str,
) {
    let arn = create_secret(client, secret).await;
    let token = token();
    start_rotation(client, &arn, &token).await;
    let created = function.invoke("createSecret", &arn, &token).await;
    let err = if at_create {
        created.unwrap_err()
    } else {
        created.unwrap();
        function
            .invoke("setSecret", &arn, &token)
            .await
            .unwrap_err()
    };
    assert_eq!(err.error_type(), error_type, "{needle}: {err}");
    assert!(err.to_string().contains(needle), "{err}");
}

#[tokio::test]
async fn an_account_on_another_plugin_is_refused_naming_it() {
    let stack = require_stack!();
    let client = sm_client().await;
    let function = Function::new(stack).await;
    // An account with a method whose value the function cannot compute.
    let socket_name = unique("mysocket");
    let accounts = [(socket_name.clone(), "%".to_owned())];
    let on_socket = async {
        let socket_password = fixture_password();
        let methods = format!(
            "VIA unix_socket OR mysql_native_password USING PASSWORD({})",
            quote_literal(&socket_password, false)
        );
        MyUser::create_via(stack, &socket_name, "%", &methods).await;
        let before = global_priv(stack, &socket_name, "%").await;
        let secret = dual_secret(stack, &client, &socket_name, &socket_password).await;
        let needle = "`unix_socket`";
        refused(&function, &client, &secret, false, "DatabaseError", needle).await;
        assert_eq!(global_priv(stack, &socket_name, "%").await, before);
    };
    dropping_afterwards(stack, &accounts, on_socket).await;
}

#[tokio::test]
async fn refusals_change_nothing() {
    let stack = require_stack!();
    let client = sm_client().await;
    let function = Function::new(stack).await;
    let name = unique("myrefuse");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let stored = user.auth_string(stack).await;
    let secret = dual_secret(stack, &client, &name, &password).await;

    let mut far = mariadb_admin_secret(stack);
    far["host"] = json!("localhost");
    let far = create_secret(&client, &far).await;
    let mut locked_out = mariadb_admin_secret(stack);
    locked_out["password"] = json!("not-the-admin-password");
    let locked_out = create_secret(&client, &locked_out).await;
    let with = |change: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut changed = secret.clone();
        change(changed.as_object_mut().unwrap());
        changed
    };
    let cases = [
        // The engine says MySQL (whose users add their own second password); the server is
        // MariaDB.
        (
            with(&|s| {
                s.insert("engine".into(), json!("mysql"));
                s.remove("masterarn");
            }),
            false,
            "InvalidSecret",
            "the server is MariaDB",
        ),
        // A master secret for another host, and a master that does not log in.
        (
            with(&|s| drop(s.insert("masterarn".into(), json!(far)))),
            false,
            "IdentityMismatch",
            "master host localhost",
        ),
        (
            with(&|s| drop(s.insert("masterarn".into(), json!(locked_out)))),
            false,
            "LoginFailed",
            "master secret",
        ),
        // The current credential does not log in: the master is never asked.
        (
            with(&|s| drop(s.insert("password".into(), json!("not-the-password")))),
            false,
            "LoginFailed",
            "current",
        ),
        // No masterarn: refused before anything is written.
        (
            with(&|s| drop(s.remove("masterarn"))),
            true,
            "InvalidSecret",
            "masterarn",
        ),
    ];
    for (case, at_create, error_type, needle) in cases {
        refused(&function, &client, &case, at_create, error_type, needle).await;
    }

    assert_eq!(user.auth_string(stack).await, stored);
    my_login(stack, &name, &password, true).await.unwrap();
    user.drop(stack).await;
}

#[tokio::test]
async fn a_forged_pending_version_cannot_aim_the_master_at_another_account() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("mydeputy");
    let password = fixture_password();
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let victim_password = fixture_password();
    let victim = MyUser::create(stack, &unique("myvictim"), "%", &victim_password, "").await;
    let victim_hash = victim.auth_string(stack).await;
    let secret = dual_secret(stack, &client, &name, &password).await;
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let mut forged = secret.clone();
    forged["username"] = json!(victim.name);
    forged["password"] = json!("attacker-chosen-password");
    put_pending(&client, &arn, &token, &forged.to_string()).await;
    let err = Function::new(stack)
        .await
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert!(err.to_string().contains(&victim.name), "{err}");
    assert_eq!(victim.auth_string(stack).await, victim_hash);
    my_login(stack, &victim.name, &victim_password, true)
        .await
        .unwrap();
    user.drop(stack).await;
    victim.drop(stack).await;
}

#[tokio::test]
async fn postgres_refuses_dual_password_before_anything_is_written() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("pgdual");
    let password = fixture_password();
    let user = stack.create_user(Server::Postgres, &name, &password).await;
    let verifier = user.verifier(stack).await;
    let mut secret = stack.secret(Server::Postgres, &name, &password);
    secret["rotation_strategy"] = json!("dual-password");
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let before = snapshot(&client, &arn).await;
    let function = Function::new(stack).await;
    let refused = |err: db_secret_rotator::Error| {
        assert_eq!(err.error_type(), "InvalidSecret", "{err}");
        assert!(err.to_string().contains("use alternating-users"), "{err}");
    };
    refused(
        function
            .invoke("createSecret", &arn, &token)
            .await
            .unwrap_err(),
    );
    assert_eq!(snapshot(&client, &arn).await, before);
    // A pending version written before the strategy was set: setSecret refuses on its own.
    let mut pending = secret.clone();
    pending["password"] = json!(fixture_password());
    put_pending(&client, &arn, &token, &pending.to_string()).await;
    refused(
        function
            .invoke("setSecret", &arn, &token)
            .await
            .unwrap_err(),
    );
    assert_eq!(user.verifier(stack).await, verifier);
    user.drop(stack).await;
}

#[tokio::test]
async fn hostile_passwords_and_account_names() {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = format!("{}'`\"\\;", unique("myh"));
    let password = format!("{}{PUNCTUATION}", fixture_password());
    register_password(&password);
    let user = MyUser::create(stack, &name, "%", &password, "").await;
    let secret = dual_secret(stack, &client, &name, &password).await;
    let arn = create_secret(&client, &secret).await;
    let mut function = Function::new(stack).await;
    function.generate_every_punctuation();
    let token = token();
    start_rotation(&client, &arn, &token).await;
    function.rotate(&arn, &token).await.unwrap();
    let now = current_password(&client, &arn).await;
    assert!(now.ends_with(PUNCTUATION));
    my_login(stack, &name, &now, true).await.unwrap();
    my_login(stack, &name, &password, true).await.unwrap();
    user.drop(stack).await;
}
