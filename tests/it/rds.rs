//! Alternating users with RDS (docs/protocol.md 3, setSecret steps 5 and 6), against the
//! emulator's RDS and the real servers: an RDS-managed master secret (only `username` and
//! `password`, tagged with its instance) drives rotations; a rotated secret on a read replica of
//! the master's instance, or on the reader endpoint or an instance of the master's Aurora
//! cluster, is accepted and the master acts on its own host (the cluster's writer endpoint); any
//! other host is refused before the master logs in; a master whose instance is gone fails
//! clearly; single-user rotations never call RDS; RDS calls are retried within the deadline. The
//! emulator's endpoint names reach the stack's servers through `support::Redirect` (see
//! `support::rds`).

use std::time::{Duration, Instant};

use db_secret_rotator::credentials::SslSetting;
use db_secret_rotator::rotators::{Engines, Rotator};
use serde_json::{Value, json};

use crate::support::proxy::{Answer, Rule, SmProxy, When};
use crate::support::runtime_api::{FunctionProcess, Outcome};
use crate::support::*;

on_every_server!(
    an_rds_managed_master_drives_three_rotations,
    a_rotated_secret_on_a_replica_host_is_accepted,
    a_host_in_no_such_relationship_is_refused,
    a_tagged_master_whose_instance_no_longer_exists_fails_clearly,
    single_user_rotations_make_no_rds_call,
);

const MASTER_LOGIN: &str = "login with master secret";
const CURRENT_LOGIN: &str = "login with current secret";

/// An alternating-users secret for `name` at `host` (an RDS endpoint), verified as `localhost`.
fn secret_at(
    stack: &Stack,
    server: Server,
    name: &str,
    password: &str,
    host: &str,
    masterarn: &str,
) -> Value {
    let mut secret = stack.secret(server, name, password);
    secret["host"] = json!(host);
    secret["port"] = json!(match server {
        Server::Postgres => 5432,
        Server::Mariadb => 3306,
    });
    secret["tls_server_name"] = json!("localhost");
    secret["masterarn"] = json!(masterarn);
    secret["rotation_strategy"] = json!("alternating-users");
    secret
}

/// The function with its RDS endpoint at `rds` (a counting proxy), connections to `endpoints`
/// going to `server`.
async fn function_at(
    stack: &Stack,
    server: Server,
    endpoints: &[&str],
    rds: &str,
) -> Function<Redirect<Engines>> {
    let mut function = Function::new(stack).await;
    function.app.rds = rds_at(Some(rds)).await;
    let mut redirect = Redirect::new(function.app.rotators.clone());
    for endpoint in endpoints {
        redirect = redirect.route(endpoint, stack, server);
    }
    function.with_rotators_of(redirect)
}

/// The RDS operations the proxy saw, in order.
fn rds_operations(proxy: &SmProxy) -> Vec<String> {
    proxy.log().into_iter().map(|r| r.name).collect()
}

/// A user, its alternating secret at `host` and the secret's ARN.
async fn user_at(
    stack: &Stack,
    server: Server,
    prefix: &str,
    host: &str,
    masterarn: &str,
) -> (TestUser, Value, String) {
    let client = sm_client().await;
    let name = unique(prefix);
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let secret = secret_at(stack, server, &name, &password, host, masterarn);
    let arn = create_secret(&client, &secret).await;
    (user, secret, arn)
}

/// Starts a rotation of `arn` and runs createSecret, then setSecret, which must fail and leave
/// the secret as createSecret left it. Returns setSecret's error.
async fn set_secret_refused<R: Rotator>(
    function: &Function<R>,
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> db_secret_rotator::Error {
    let token = token();
    start_rotation(client, arn, &token).await;
    function.invoke("createSecret", arn, &token).await.unwrap();
    let before = snapshot(client, arn).await;
    let err = function.invoke("setSecret", arn, &token).await.unwrap_err();
    assert_eq!(
        snapshot(client, arn).await,
        before,
        "setSecret wrote: {err}"
    );
    err
}

/// Rotates `arn` once; the clone `clone` must then be `AWSCURRENT`'s user, and log in with its
/// password. Returns `AWSCURRENT`.
async fn rotate_to_clone<R: Rotator>(
    function: &Function<R>,
    stack: &Stack,
    server: Server,
    arn: &str,
    clone: &str,
) -> Value {
    let client = sm_client().await;
    let token = token();
    start_rotation(&client, arn, &token).await;
    function
        .rotate(arn, &token)
        .await
        .unwrap_or_else(|e| panic!("{arn}: {e}"));
    let current = value(&client, arn, "AWSCURRENT").await;
    assert_eq!(current["username"], json!(clone), "{arn}");
    stack
        .login(server, clone, current["password"].as_str().unwrap())
        .await
        .unwrap_or_else(|e| panic!("{arn}: {e}"));
    current
}

async fn an_rds_managed_master_drives_three_rotations(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let instance = create_instance(stack, server, true).await;
    let masterarn = instance.master_secret.clone().unwrap();
    let master_before = raw_value(&client, &masterarn, "AWSCURRENT").await;
    let master_keys: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, Value>>(&master_before)
            .unwrap()
            .keys()
            .cloned()
            .collect();
    assert_eq!(
        master_keys,
        ["username", "password"],
        "an RDS-managed secret holds no host"
    );
    // The application secret asks for plaintext and names a TLS name of its choosing: neither
    // may choose the master's transport (docs/protocol.md 5.14).
    let name = unique("rdsm");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let mut original = secret_at(
        stack,
        server,
        &name,
        &password,
        &instance.endpoint,
        &masterarn,
    );
    original["ssl"] = json!(false);
    original["tls_server_name"] = json!("attacker.example");
    let arn = create_secret(&client, &original).await;
    let clone = format!("{name}_clone");
    let proxy = SmProxy::start(stack).await;
    let function = function_at(stack, server, &[&instance.endpoint], &proxy.url).await;

    let mut history = vec![(
        name.clone(),
        original["password"].as_str().unwrap().to_owned(),
    )];
    for round in 1..=3 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function
            .rotate(&arn, &token)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let current = value(&client, &arn, "AWSCURRENT").await;
        let user_now = current["username"].as_str().unwrap().to_owned();
        let pw_now = current["password"].as_str().unwrap().to_owned();
        assert_eq!(
            &user_now,
            if round % 2 == 1 { &clone } else { &name },
            "round {round}"
        );
        // The new credential logs in; so does the previous one (the other user) ...
        stack
            .login(server, &user_now, &pw_now)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let (user_before, pw_before) = history.last().unwrap();
        stack
            .login(server, user_before, pw_before)
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // ... and this user's password of two rotations ago no longer does.
        if let Some((user_then, pw_then)) = history.len().checked_sub(2).map(|i| &history[i]) {
            assert_eq!(user_then, &user_now);
            assert_eq!(
                stack.login(server, user_then, pw_then).await,
                Err(server.rejected().to_owned()),
                "round {round}"
            );
        }
        // Only the user name and the password changed.
        let mut expected = original.clone();
        expected["username"] = json!(user_now);
        expected["password"] = json!(pw_now);
        assert_eq!(current, expected, "round {round}");
        history.push((user_now, pw_now));
    }
    // The master secret is untouched; its database was looked up once for the container, and
    // the master always acted on that instance's endpoint.
    assert_eq!(
        raw_value(&client, &masterarn, "AWSCURRENT").await,
        master_before
    );
    assert_eq!(rds_operations(&proxy), ["DescribeDBInstances"]);
    let masters = function.app.rotators.hosts_of(MASTER_LOGIN);
    assert_eq!(masters, vec![instance.endpoint.clone(); 3]);
    for attempt in function.app.rotators.attempts_named(MASTER_LOGIN) {
        assert_eq!(
            (attempt.ssl, attempt.tls_server_name),
            (SslSetting::Require, None),
            "the master verifies TLS for RDS's endpoint name"
        );
    }
    stack.drop_user(server, &clone).await;
    user.drop(stack).await;
}

async fn a_rotated_secret_on_a_replica_host_is_accepted(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let primary = create_instance(stack, server, true).await;
    let replica = create_replica(stack, &primary).await;
    // The RDS-managed master, and a master secret of the classic kind naming the primary's host.
    let admin = stack.master_secret(server);
    let mut classic =
        json!({"engine": admin["engine"], "host": primary.endpoint, "port": primary.port});
    classic["username"] = admin["username"].clone();
    classic["password"] = admin["password"].clone();
    classic["tls_server_name"] = json!("localhost");
    let classic_arn = create_secret(&client, &classic).await;
    for masterarn in [primary.master_secret.clone().unwrap(), classic_arn] {
        let (user, _, arn) = user_at(stack, server, "rdsr", &replica.endpoint, &masterarn).await;
        let clone = format!("{}_clone", user.name());
        let proxy = SmProxy::start(stack).await;
        let function = function_at(
            stack,
            server,
            &[&primary.endpoint, &replica.endpoint],
            &proxy.url,
        )
        .await;
        let current = rotate_to_clone(&function, stack, server, &arn, &clone).await;
        assert_eq!(
            current["host"],
            json!(replica.endpoint),
            "the secret keeps its host"
        );
        // Current proved itself on the replica; the master acted on the primary.
        assert_eq!(
            function.app.rotators.hosts_of(CURRENT_LOGIN),
            [replica.endpoint.as_str()]
        );
        assert_eq!(
            function.app.rotators.hosts_of(MASTER_LOGIN),
            [primary.endpoint.as_str()]
        );
        // RDS was asked about the master's instance and the replica, nothing else.
        assert_eq!(
            rds_operations(&proxy),
            ["DescribeDBInstances", "DescribeDBInstances"]
        );
        stack.drop_user(server, &clone).await;
        user.drop(stack).await;
    }
}

/// An Aurora cluster's RDS-managed master acts on the writer endpoint for a rotated secret on the
/// reader endpoint or on an instance of the cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_on_an_aurora_reader_is_accepted() {
    let stack = require_stack!();
    let server = Server::Postgres;
    let cluster = create_cluster(stack).await;
    for (host, asked) in [
        (&cluster.reader, &["DescribeDBClusters"][..]),
        (
            &cluster.member.endpoint,
            &["DescribeDBClusters", "DescribeDBInstances"][..],
        ),
    ] {
        let (user, _, arn) = user_at(stack, server, "rdsa", host, &cluster.master_secret).await;
        let clone = format!("{}_clone", user.name());
        let proxy = SmProxy::start(stack).await;
        let endpoints = [cluster.writer.as_str(), host.as_str()];
        let function = function_at(stack, server, &endpoints, &proxy.url).await;
        rotate_to_clone(&function, stack, server, &arn, &clone).await;
        assert_eq!(
            function.app.rotators.hosts_of(CURRENT_LOGIN),
            [host.as_str()]
        );
        assert_eq!(
            function.app.rotators.hosts_of(MASTER_LOGIN),
            [cluster.writer.as_str()]
        );
        assert_eq!(rds_operations(&proxy), asked, "{host}");
        stack.drop_user(server, &clone).await;
        user.drop(stack).await;
    }
}

async fn a_host_in_no_such_relationship_is_refused(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let primary = create_instance(stack, server, true).await;
    let masterarn = primary.master_secret.clone().unwrap();
    let unrelated = create_instance(stack, server, false).await;
    let replica = create_replica(stack, &primary).await;
    for (case, host) in [
        (
            "an instance that replicates nothing",
            unrelated.endpoint.clone(),
        ),
        (
            "the replica's name under another domain",
            format!("{}.evil.example", replica.endpoint),
        ),
    ] {
        let (user, _, arn) = user_at(stack, server, "rdsx", &host, &masterarn).await;
        let clone = format!("{}_clone", user.name());
        let proxy = SmProxy::start(stack).await;
        // Current's credential works on that host: only RDS can tell it is another database.
        let function = function_at(stack, server, &[&primary.endpoint, &host], &proxy.url).await;
        let err = set_secret_refused(&function, &client, &arn).await;
        assert_eq!(err.error_type(), "IdentityMismatch", "{case}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&host) && text.contains(&primary.endpoint),
            "{case}: {text}"
        );
        assert_eq!(
            function.app.rotators.hosts_of(CURRENT_LOGIN),
            [host.as_str()],
            "{case}"
        );
        assert!(
            function.app.rotators.hosts_of(MASTER_LOGIN).is_empty(),
            "{case}: the master logged in"
        );
        assert!(!stack.user_exists(server, &clone).await, "{case}");
        user.drop(stack).await;
    }
}

async fn a_tagged_master_whose_instance_no_longer_exists_fails_clearly(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let instance = create_instance(stack, server, true).await;
    let masterarn = instance.master_secret.clone().unwrap();
    let (user, _, arn) = user_at(stack, server, "rdsg", &instance.endpoint, &masterarn).await;
    let clone = format!("{}_clone", user.name());
    rename_instance(stack, &instance).await;
    let proxy = SmProxy::start(stack).await;
    let function = function_at(stack, server, &[&instance.endpoint], &proxy.url).await;
    let err = set_secret_refused(&function, &client, &arn).await;
    assert_eq!(err.error_type(), "InvalidSecret", "{err}");
    let text = err.to_string();
    let db_arn = format!(":db:{}", instance.id);
    for needle in [
        masterarn.as_str(),
        "aws:rds:primaryDBInstanceArn",
        db_arn.as_str(),
        "does not know",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
    assert!(function.app.rotators.hosts_of(MASTER_LOGIN).is_empty());
    assert!(!stack.user_exists(server, &clone).await);
    user.drop(stack).await;
}

async fn single_user_rotations_make_no_rds_call(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("rds1");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let arn = create_secret(&client, &stack.secret(server, &name, &password)).await;
    let proxy = SmProxy::start(stack).await;
    let mut function = Function::new(stack).await;
    function.app.rds = rds_at(Some(&proxy.url)).await;
    for _ in 0..2 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function.rotate(&arn, &token).await.unwrap();
    }
    let current = value(&client, &arn, "AWSCURRENT").await;
    stack
        .login(server, &name, current["password"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(proxy.operations(), 0, "{:?}", rds_operations(&proxy));
    assert!(
        !function.app.rds.api().client_built(),
        "the RDS client was built"
    );
    user.drop(stack).await;
}

/// The built binary: `AWS_ENDPOINT_URL_RDS` routes its RDS calls, which single-user rotations
/// never make and an RDS-managed master does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_calls_rds_only_for_an_rds_managed_master() {
    let stack = require_stack!();
    let client = sm_client().await;
    let server = Server::Postgres;
    let proxy = SmProxy::start(stack).await;
    let process = FunctionProcess::spawn(
        stack,
        &unique("rds-binary"),
        &[("AWS_ENDPOINT_URL_RDS", &proxy.url)],
    )
    .await;
    let invoke = async |step: &str, arn: &str, token: &str| {
        let event = json!({"Step": step, "SecretId": arn, "ClientRequestToken": token});
        process
            .api
            .invoke_json(&event, Duration::from_secs(30))
            .await
    };

    let name = unique("rdsb");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let single = create_secret(&client, &stack.secret(server, &name, &password)).await;
    let first = token();
    start_rotation(&client, &single, &first).await;
    for step in ["createSecret", "setSecret", "testSecret", "finishSecret"] {
        let outcome = invoke(step, &single, &first).await;
        assert!(
            matches!(outcome, Outcome::Response(_)),
            "{step}: {outcome:?}"
        );
    }
    value(&client, &single, "AWSCURRENT").await;
    assert_eq!(
        proxy.operations(),
        0,
        "single user: {:?}",
        rds_operations(&proxy)
    );

    // The managed master's endpoint is a name only the emulator knows: the binary locates it
    // through RDS, then refuses the rotated secret's host, which is not that endpoint.
    let instance = create_instance(stack, server, true).await;
    let rotated = value(&client, &single, "AWSCURRENT").await;
    let mut secret = stack.secret(server, &name, rotated["password"].as_str().unwrap());
    secret["masterarn"] = json!(instance.master_secret.clone().unwrap());
    secret["rotation_strategy"] = json!("alternating-users");
    let alternating = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &alternating, &token).await;
    assert!(matches!(
        invoke("createSecret", &alternating, &token).await,
        Outcome::Response(_)
    ));
    let outcome = invoke("setSecret", &alternating, &token).await;
    let Outcome::Error {
        error_type,
        message,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(error_type, "IdentityMismatch", "{message}");
    assert!(message.contains(&instance.endpoint), "{message}");
    assert_eq!(rds_operations(&proxy), ["DescribeDBInstances"]);
    assert_no_password_in(&process.logs(), "the function's log stream");
    drop(process);
    user.drop(stack).await;
}

/// RDS calls ride out throttling like Secrets Manager's, and a silent RDS endpoint stops the step
/// before the invocation's deadline, naming the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_calls_are_retried_within_the_deadline() {
    let stack = require_stack!();
    let client = sm_client().await;
    let server = Server::Postgres;
    let instance = create_instance(stack, server, true).await;
    let masterarn = instance.master_secret.clone().unwrap();

    let (user, _, arn) = user_at(stack, server, "rdst", &instance.endpoint, &masterarn).await;
    let proxy = SmProxy::start(stack).await;
    proxy.add(Rule::NextRequests {
        count: 2,
        answer: Answer::Throttle,
    });
    let function = function_at(stack, server, &[&instance.endpoint], &proxy.url).await;
    let first = token();
    start_rotation(&client, &arn, &first).await;
    function.rotate(&arn, &first).await.unwrap();
    let attempts: Vec<(String, usize, usize, bool)> = proxy
        .log()
        .into_iter()
        .map(|r| (r.name, r.op, r.attempt, r.fault.is_some()))
        .collect();
    let expected: Vec<(String, usize, usize, bool)> = (1..=3)
        .map(|a| ("DescribeDBInstances".to_owned(), 1, a, a < 3))
        .collect();
    assert_eq!(
        attempts, expected,
        "one call, three attempts, the first two throttled"
    );
    stack
        .drop_user(server, &format!("{}_clone", user.name()))
        .await;
    user.drop(stack).await;

    let (user, _, arn) = user_at(stack, server, "rdsh", &instance.endpoint, &masterarn).await;
    let silent = SmProxy::start(stack).await;
    silent.add(Rule::All {
        when: When::Before,
        answer: Answer::Hang,
    });
    let mut function = function_at(stack, server, &[&instance.endpoint], &silent.url).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    function.invoke("createSecret", &arn, &token).await.unwrap();
    function.deadline = Some(Duration::from_secs(4));
    let started = Instant::now();
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.error_type(), "DeadlineExceeded", "{err}");
    assert!(err.to_string().contains("RDS DescribeDBInstances"), "{err}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(
        !stack
            .user_exists(server, &format!("{}_clone", user.name()))
            .await
    );
    user.drop(stack).await;
}
