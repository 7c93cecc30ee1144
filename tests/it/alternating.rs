//! Alternating users: a master secret creates and maintains `<user>_clone`, on every engine, plus
//! PostgreSQL's ownership and membership repair.

use postgres_protocol::escape::escape_identifier;
use serde_json::{Value, json};

use crate::support::*;

on_every_server!(
    rotations_alternate_between_user_and_clone,
    refusals_change_nothing
);

async fn rotations_alternate_between_user_and_clone(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("alt");
    let clone = format!("{name}_clone");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let table = stack.grant_table(server, &name).await;
    let master_arn = create_secret(&client, &stack.master_secret(server)).await;
    let original_secret = stack.alternating_secret(server, &name, &password, &master_arn);
    let arn = create_secret(&client, &original_secret).await;
    let function = Function::new(stack).await;

    let mut expected_users = [clone.as_str(), name.as_str()].into_iter().cycle();
    for round in 1..=3 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function.rotate(&arn, &token).await.unwrap();
        let current = value(&client, &arn, "AWSCURRENT").await;
        let previous = value(&client, &arn, "AWSPREVIOUS").await;
        let (user_now, pw_now) = (
            current["username"].as_str().unwrap(),
            current["password"].as_str().unwrap(),
        );
        let (user_before, pw_before) = (
            previous["username"].as_str().unwrap(),
            previous["password"].as_str().unwrap(),
        );
        assert_eq!(user_now, expected_users.next().unwrap(), "round {round}");
        assert_ne!(user_now, user_before, "round {round}");
        // Both the current and the previous credential log in, with the original's privileges.
        stack
            .login(server, user_now, pw_now)
            .await
            .unwrap_or_else(|e| panic!("round {round}: current: {e}"));
        stack
            .login(server, user_before, pw_before)
            .await
            .unwrap_or_else(|e| panic!("round {round}: previous: {e}"));
        stack
            .reads(server, &table, user_now, pw_now)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // Only the user name and the password changed.
        let mut expected = original_secret.clone();
        expected["username"] = json!(user_now);
        expected["password"] = json!(pw_now);
        assert_eq!(current, expected, "round {round}");
    }
    assert!(stack.user_exists(server, &clone).await);
    stack.drop_table(server, table).await;
    stack.drop_user(server, &clone).await;
    user.drop(stack).await;
}

async fn refusals_change_nothing(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("altno");
    let clone = format!("{name}_clone");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let master = stack.master_secret(server);
    let master_arn = create_secret(&client, &master).await;
    let mut wrong = master.clone();
    wrong["password"] = json!("wrong");
    let wrong_master = create_secret(&client, &wrong).await;
    let mut far = master.clone();
    far["host"] = json!("localhost");
    let far_master = create_secret(&client, &far).await;
    let good = stack.alternating_secret(server, &name, &password, &master_arn);

    let mut no_master = good.clone();
    no_master.as_object_mut().unwrap().remove("masterarn");
    let long_name = "l".repeat(stack.clone_limit(server) - "_clone".len() + 1);
    let unit = match server {
        Server::Postgres => "bytes",
        Server::Mariadb => "characters",
    };
    let limit = format!("exceed {} {unit}", stack.clone_limit(server));
    let mut too_long = good.clone();
    too_long["username"] = json!(long_name);
    let mut bad_master = good.clone();
    bad_master["masterarn"] = json!(wrong_master);
    let mut distant_master = good.clone();
    distant_master["masterarn"] = json!(far_master);
    let mut bad_current = good.clone();
    bad_current["password"] = json!("not-the-password");

    let cases = [
        (
            "masterarn missing",
            no_master,
            "createSecret",
            "InvalidSecret",
            "masterarn key is missing",
        ),
        (
            "clone name too long",
            too_long,
            "createSecret",
            "InvalidSecret",
            limit.as_str(),
        ),
        (
            "master password wrong",
            bad_master,
            "setSecret",
            "LoginFailed",
            wrong_master.as_str(),
        ),
        (
            "master on another host",
            distant_master,
            "setSecret",
            "IdentityMismatch",
            "master host localhost",
        ),
        (
            "current credential invalid",
            bad_current,
            "setSecret",
            "LoginFailed",
            "current",
        ),
    ];
    let function = Function::new(stack).await;
    let verifier = user.verifier(stack).await;
    for (case, secret, step, error_type, needle) in cases {
        let arn = create_secret(&client, &secret).await;
        let token = token();
        start_rotation(&client, &arn, &token).await;
        if step == "setSecret" {
            function.invoke("createSecret", &arn, &token).await.unwrap();
        }
        let before = snapshot(&client, &arn).await;
        let err = function.invoke(step, &arn, &token).await.unwrap_err();
        assert_eq!(err.error_type(), error_type, "{case}: {err}");
        assert!(err.to_string().contains(needle), "{case}: {err}");
        assert_eq!(snapshot(&client, &arn).await, before, "{case}");
        assert!(
            !stack.user_exists(server, &clone).await,
            "{case}: clone created"
        );
        assert_eq!(user.verifier(stack).await, verifier, "{case}");
    }
    user.drop(stack).await;
}

/// A user owning nothing but granted SELECT on a table only it may read, its master secret, and its
/// alternating-users secret.
struct Setup {
    user: PgUser,
    password: String,
    table: String,
    schema: String,
    master_arn: String,
    client: aws_sdk_secretsmanager::Client,
}

async fn setup(stack: &Stack) -> Setup {
    let password = fixture_password();
    let name = unique("alt");
    let user = PgUser::create(stack, stack.pg_port, &name, &password).await;
    let table = format!("{name}_secret_table");
    let schema = format!("{name}_schema");
    pg_admin(stack, stack.pg_port)
        .await
        .batch_execute(&format!(
            "CREATE TABLE {t} (v int); INSERT INTO {t} VALUES (42); GRANT SELECT ON {t} TO {u}; \
             CREATE SCHEMA {s} AUTHORIZATION {u};",
            t = escape_identifier(&table),
            u = escape_identifier(&name),
            s = escape_identifier(&schema),
        ))
        .await
        .unwrap();
    let client = sm_client().await;
    let master = json!({
        "engine": "postgres",
        "host": stack.pg_host,
        "port": stack.pg_port,
        "username": stack.pg_admin_user,
        "password": stack.pg_admin_password,
    });
    let master_arn = create_secret(&client, &master).await;
    Setup {
        user,
        password,
        table,
        schema,
        master_arn,
        client,
    }
}

impl Setup {
    fn secret(&self, stack: &Stack) -> Value {
        let mut secret = pg_secret(stack, stack.pg_port, &self.user.name, &self.password);
        secret["masterarn"] = json!(self.master_arn);
        secret["rotation_strategy"] = json!("alternating-users");
        secret
    }

    fn clone_name(&self) -> String {
        format!("{}_clone", self.user.name)
    }

    async fn reads_table(&self, stack: &Stack, user: &str, password: &str) -> i32 {
        let client = pg_client(stack, user, password).await;
        client
            .query_one(
                &format!("SELECT v FROM {}", escape_identifier(&self.table)),
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    async fn role_exists(&self, stack: &Stack, name: &str) -> bool {
        pg_admin(stack, stack.pg_port)
            .await
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name])
            .await
            .unwrap()
            .is_some()
    }

    async fn teardown(self, stack: &Stack) {
        let admin = pg_admin(stack, stack.pg_port).await;
        let _ = admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE; DROP TABLE IF EXISTS {};",
                escape_identifier(&self.schema),
                escape_identifier(&self.table)
            ))
            .await;
        for role in [self.clone_name(), self.user.name.clone()] {
            let _ = admin
                .batch_execute(&format!(
                    "DROP OWNED BY {r}; DROP ROLE {r}",
                    r = escape_identifier(&role)
                ))
                .await;
        }
    }
}

async fn current_credentials(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    stage: &str,
) -> (String, String) {
    let v = value(client, arn, stage).await;
    (
        v["username"].as_str().unwrap().to_owned(),
        v["password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn postgres_clone_owns_nothing_and_is_repaired() {
    let stack = require_stack!();
    let setup = setup(stack).await;
    let arn = create_secret(&setup.client, &setup.secret(stack)).await;
    let function = Function::new(stack).await;

    // First rotation: the clone appears with the original's privileges.
    let token1 = token();
    start_rotation(&setup.client, &arn, &token1).await;
    function.rotate(&arn, &token1).await.unwrap();
    let (user, password) = current_credentials(&setup.client, &arn, "AWSCURRENT").await;
    assert_eq!(user, setup.clone_name());
    assert_eq!(setup.reads_table(stack, &user, &password).await, 42);
    let (prev_user, prev_password) = current_credentials(&setup.client, &arn, "AWSPREVIOUS").await;
    assert_eq!(
        (prev_user.as_str(), prev_password.as_str()),
        (setup.user.name.as_str(), setup.password.as_str())
    );
    pg_login(stack, stack.pg_port, &prev_user, &prev_password)
        .await
        .expect("previous still logs in");
    let secret_now = value(&setup.client, &arn, "AWSCURRENT").await;
    let mut expected = setup.secret(stack);
    expected["username"] = json!(user);
    expected["password"] = json!(password);
    assert_eq!(secret_now, expected, "only username and password changed");

    // Objects created through the clone belong to the original.
    let clone_client = pg_client(stack, &user, &password).await;
    clone_client
        .batch_execute(&format!(
            "CREATE TABLE {}.made_by_clone (x int)",
            escape_identifier(&setup.schema)
        ))
        .await
        .unwrap();
    let owner: String = pg_admin(stack, stack.pg_port)
        .await
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = $1 AND tablename = 'made_by_clone'",
            &[&setup.schema],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, setup.user.name);

    // Second rotation: back to the original, without creating anything.
    let token2 = token();
    start_rotation(&setup.client, &arn, &token2).await;
    assert!(setup.role_exists(stack, &setup.clone_name()).await);
    function.rotate(&arn, &token2).await.unwrap();
    let (user2, password2) = current_credentials(&setup.client, &arn, "AWSCURRENT").await;
    assert_eq!(user2, setup.user.name);
    assert_eq!(setup.reads_table(stack, &user2, &password2).await, 42);
    pg_login(stack, stack.pg_port, &setup.user.name, &setup.password)
        .await
        .expect_err("the original's old password is gone");
    // The previous credential (the clone) still works.
    assert_eq!(setup.reads_table(stack, &user, &password).await, 42);

    // Drift between rotations, while the original is current: the clone loses its default role;
    // adding the suffix again repairs it. A clone that lost its membership would be refused: it
    // no longer holds what the original holds, so whoever controls it would gain the original's
    // rights (tests/it/attacks.rs).
    pg_admin(stack, stack.pg_port)
        .await
        .batch_execute(&format!(
            "ALTER ROLE {} RESET role",
            escape_identifier(&setup.clone_name())
        ))
        .await
        .unwrap();

    // Third rotation: the clone again, password changed by ALTER, default role repaired.
    let token3 = token();
    start_rotation(&setup.client, &arn, &token3).await;
    function.rotate(&arn, &token3).await.unwrap();
    let (user3, password3) = current_credentials(&setup.client, &arn, "AWSCURRENT").await;
    assert_eq!(user3, setup.clone_name());
    assert_ne!(password3, password);
    assert_eq!(setup.reads_table(stack, &user3, &password3).await, 42);
    let acting_as: String = pg_client(stack, &user3, &password3)
        .await
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(acting_as, setup.user.name, "the default role was repaired");
    pg_login(stack, stack.pg_port, &user2, &password2)
        .await
        .expect("previous still logs in");
    setup.teardown(stack).await;
}

/// PostgreSQL limits names to 63 bytes of UTF-8, not characters: a 30-character user name of 58
/// bytes has a 64-byte clone name, which the server would truncate into another name. One byte
/// less rotates, the clone's name exactly 63 bytes.
#[tokio::test]
async fn postgres_clone_names_are_limited_in_bytes() {
    let stack = require_stack!();
    let client = sm_client().await;
    let master_arn = create_secret(&client, &stack.master_secret(Server::Postgres)).await;
    let function = Function::new(stack).await;

    let too_long = format!("{}ab", "é".repeat(28));
    assert_eq!((too_long.chars().count(), too_long.len()), (30, 58));
    let secret = stack.alternating_secret(
        Server::Postgres,
        &too_long,
        &fixture_password(),
        &master_arn,
    );
    let arn = create_secret(&client, &secret).await;
    let refused_token = token();
    start_rotation(&client, &arn, &refused_token).await;
    let before = snapshot(&client, &arn).await;
    let err = function
        .invoke("createSecret", &arn, &refused_token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret", "{err}");
    assert!(err.to_string().contains("exceed 63 bytes"), "{err}");
    assert_eq!(snapshot(&client, &arn).await, before, "nothing written");

    // 57 bytes, unique: `é`s and the counter's ASCII.
    let suffix = unique("b");
    let name = format!("{}{suffix}", "é".repeat((57 - suffix.len()) / 2));
    let name = if name.len() < 57 {
        format!("{name}x")
    } else {
        name
    };
    assert_eq!(name.len(), 57);
    let clone = format!("{name}_clone");
    let password = fixture_password();
    let user = stack.create_user(Server::Postgres, &name, &password).await;
    let arn = create_secret(
        &client,
        &stack.alternating_secret(Server::Postgres, &name, &password, &master_arn),
    )
    .await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    function.rotate(&arn, &token).await.unwrap();
    let current = value(&client, &arn, "AWSCURRENT").await;
    assert_eq!(current["username"], clone.as_str());
    assert_eq!(clone.len(), 63);
    stack
        .login(
            Server::Postgres,
            &clone,
            current["password"].as_str().unwrap(),
        )
        .await
        .unwrap();
    stack.drop_user(Server::Postgres, &clone).await;
    user.drop(stack).await;
}
