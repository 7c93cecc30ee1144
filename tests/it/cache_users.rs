//! ElastiCache and MemoryDB users (engines `elasticache`, `memorydb`) rotated end to end: the
//! function's own SDK clients (`SdkCacheUsers`) against the user API emulator
//! (`support::cache_api`), whose password changes reach the stack's Redis as the data plane;
//! Secrets Manager is the stack's moto, through the fault proxy where a test injects faults.
//!
//! Each test runs for both services. The secrets name the stack's TLS Redis (`host`, `port`,
//! `ssl: true`) unless a test says otherwise; the leak check of every invocation covers the
//! fixtures' and the generated passwords, all registered.
//!
//! - three rotations: current and previous `AUTH`, the password before them is refused; the
//!   same without a data plane (the function never logs in), and single-user when asked;
//! - a user stuck `modifying` past the invocation's deadline, at setSecret and at testSecret:
//!   `DeadlineExceeded` before the deadline, naming the user and its status; the re-driven
//!   rotation completes once the user is `active`, without restarting the change;
//! - a throttled API, and a change whose answer was lost, retried within the deadline;
//! - refusals (a username mismatch, a user in another account, alternating users, a forged
//!   pending version) that write nothing and change no user;
//! - a fault at points of every step (the user API, Secrets Manager, the data plane), then the
//!   same token re-driven to completion;
//! - the configuration test, and the doctor's `--login` audit;
//! - `moto_reads_the_same_answers`: the function against moto's own MemoryDB and ElastiCache
//!   `DescribeUsers`, which checks the emulator's answers against another implementation.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use db_secret_rotator::Error;
use db_secret_rotator::cache_user::Service;
use db_secret_rotator::doctor::{Doctor, Options, Report};
use serde_json::{Value, json};

use crate::support::cache_api::*;
use crate::support::proxy::{Answer, Fault, Rule, SmProxy, TcpProxy, When};
use crate::support::redis::redis_login;
use crate::support::*;

macro_rules! on_both_services {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use db_secret_rotator::cache_user::Service;
                #[tokio::test]
                async fn elasticache() {
                    super::$name(Service::ElastiCache).await
                }
                #[tokio::test]
                async fn memorydb() {
                    super::$name(Service::MemoryDb).await
                }
            }
        )*
    };
}

on_both_services!(
    three_rotations_keep_current_and_previous,
    three_rotations_without_a_data_plane,
    single_user_when_the_secret_asks,
    a_user_stuck_modifying_past_the_deadline,
    a_change_settling_past_the_deadline,
    a_throttled_api_is_retried,
    refusals_write_nothing,
    faults_in_create_secret,
    faults_in_set_secret,
    faults_in_test_secret,
    faults_in_finish_secret,
    the_configuration_test,
    the_doctors_login_audit,
);

const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

/// What a case is set up with.
#[derive(Debug, Clone, Copy, Default)]
struct Setup {
    /// The secret names the stack's TLS Redis, and the emulator's changes reach it.
    data_plane: bool,
    /// The function's Secrets Manager calls go through an [`SmProxy`], and the secret names a
    /// [`TcpProxy`] in front of Redis.
    proxies: bool,
    /// `rotation_strategy` of the secret, when set.
    strategy: Option<&'static str>,
}

const DATA_PLANE: Setup = Setup {
    data_plane: true,
    proxies: false,
    strategy: None,
};

/// A user of the emulator, its secret in moto, and the function.
struct Case {
    stack: &'static Stack,
    redis: &'static RedisStack,
    setup: Setup,
    api: CacheApi,
    user: ApiUser,
    /// Every password the secret held, oldest first.
    passwords: Vec<String>,
    secret: Value,
    arn: String,
    client: aws_sdk_secretsmanager::Client,
    function: Function,
    sm: Option<SmProxy>,
    tcp: Option<TcpProxy>,
}

impl Case {
    async fn new(
        stack: &'static Stack,
        redis: &'static RedisStack,
        service: Service,
        prefix: &str,
        setup: Setup,
    ) -> Self {
        let api = CacheApi::start(setup.data_plane.then_some((stack, redis))).await;
        let password = fixture_password();
        let user = api.create_user(service, prefix, &[&password]).await;
        let tcp = match setup.proxies {
            true => Some(TcpProxy::start(&redis.host, redis.port).await),
            false => None,
        };
        let mut secret = user.secret(&password, setup.data_plane.then_some(redis));
        if let (Some(tcp), true) = (&tcp, setup.data_plane) {
            secret["port"] = json!(tcp.port);
        }
        if let Some(strategy) = setup.strategy {
            secret["rotation_strategy"] = json!(strategy);
        }
        let client = sm_client().await;
        let arn = create_secret(&client, &secret).await;
        let sm = match setup.proxies {
            true => Some(SmProxy::start(stack).await),
            false => None,
        };
        let function = api
            .function(stack, sm.as_ref().map(|p| p.url.as_str()))
            .await;
        Case {
            stack,
            redis,
            setup,
            api,
            user,
            passwords: vec![password],
            secret,
            arn,
            client,
            function,
            sm,
            tcp,
        }
    }

    /// A new rotation staged as the service stages it; its token.
    async fn start(&self) -> String {
        let token = token();
        start_rotation(&self.client, &self.arn, &token).await;
        token
    }

    /// A full rotation with a new token, then [`Case::rotated`].
    async fn rotate(&mut self) {
        let token = self.start().await;
        self.function.rotate(&self.arn, &token).await.unwrap();
        self.rotated(&token).await;
    }

    /// After the rotation of `token` completed: `token` is `AWSCURRENT` with a new password and
    /// every other key as it was, the one before is `AWSPREVIOUS`; the user is `active` and holds
    /// exactly those two (or, single user, the new one alone); on the data plane both `AUTH`
    /// (single user: the new one only) and the password before them is refused.
    async fn rotated(&mut self, token: &str) {
        let stages = labels(&self.client, &self.arn).await;
        assert!(
            stages[token].iter().any(|s| s == "AWSCURRENT"),
            "{stages:?}"
        );
        let current = value(&self.client, &self.arn, "AWSCURRENT").await;
        let new = current["password"].as_str().unwrap().to_owned();
        let previous = value(&self.client, &self.arn, "AWSPREVIOUS").await;
        let old = self.passwords.last().unwrap().clone();
        // Booleans, not values: a failing assertion must not print a password.
        assert!(
            previous["password"] == json!(old),
            "AWSPREVIOUS holds the one before"
        );
        assert!(new != old, "a new password");
        let mut expected = self.secret.clone();
        expected["password"] = json!(new);
        assert!(current == expected, "only the password changes");
        let single = self.setup.strategy == Some("single-user");
        let held = match single {
            true => vec![new.clone()],
            false => vec![new.clone(), old.clone()],
        };
        assert!(self.api.passwords(&self.user) == held, "the user's list");
        assert_eq!(self.api.status(&self.user), "active");
        if self.setup.data_plane {
            self.logs_in(&new).await;
            match single {
                true => self.refused(&old).await,
                false => self.logs_in(&old).await,
            }
            if let Some(before) = self.passwords.iter().rev().nth(1) {
                self.refused(before).await;
            }
        }
        self.passwords.push(new);
    }

    async fn logs_in(&self, password: &str) {
        let result = redis_login(self.stack, self.redis, &self.user.name, password).await;
        assert!(result.is_ok(), "a password that must log in: {result:?}");
    }

    async fn refused(&self, password: &str) {
        let result = redis_login(self.stack, self.redis, &self.user.name, password).await;
        assert_eq!(
            result,
            Err("WRONGPASS".to_owned()),
            "a password that must not log in"
        );
    }

    /// `AWSCURRENT` logs in on the data plane (dual passwords: always).
    async fn current_logs_in(&self) {
        let current = value(&self.client, &self.arn, "AWSCURRENT").await;
        self.logs_in(current["password"].as_str().unwrap()).await;
    }

    /// The Secrets Manager calls of each step of a full rotation with a new token, by name and
    /// stage, in order (each operation once, however many attempts).
    async fn traced_rotation(&mut self) -> BTreeMap<&'static str, Vec<(String, Option<String>)>> {
        let proxy = self.sm.as_ref().expect("the Secrets Manager proxy");
        let token = self.start().await;
        let mut trace = BTreeMap::new();
        for step in STEPS {
            let first = proxy.operations();
            self.function.invoke(step, &self.arn, &token).await.unwrap();
            let calls = proxy
                .log()
                .into_iter()
                .filter(|r| r.op > first && r.attempt == 1)
                .map(|r| (r.name, r.stage))
                .collect();
            trace.insert(step, calls);
        }
        self.rotated(&token).await;
        trace
    }

    /// Removes the Redis user and checks the emulator's data plane never failed.
    async fn cleanup(self) {
        self.api.cleanup(&[&self.user]).await;
    }
}

/// The error's Lambda `errorType`, and its text.
fn error_kind(err: &Error) -> (&'static str, String) {
    (err.error_type(), err.to_string())
}

// ---------------------------------------------------------------------------------------------
// Rotations

async fn three_rotations_keep_current_and_previous(service: Service) {
    let (stack, redis) = require_redis!();
    let mut case = Case::new(stack, redis, service, "cu3", DATA_PLANE).await;
    for _ in 0..3 {
        case.rotate().await;
    }
    // Three changes, each the passwords alone: the access string is never sent.
    assert_eq!(case.api.changes(&case.user), 3);
    let log = case.api.log();
    assert!(log.iter().all(|c| c.extra.is_empty()), "{log:?}");
    assert!(
        log.iter()
            .all(|c| c.service == service && c.user == case.user.id && c.error.is_none()),
        "{log:?}"
    );
    case.cleanup().await;
}

async fn three_rotations_without_a_data_plane(service: Service) {
    let (stack, redis) = require_redis!();
    // No `host`: the function has nothing to log in to, and no Redis user exists at all; the
    // emulator's password lists show the API did the work.
    let mut case = Case::new(stack, redis, service, "cu3np", Setup::default()).await;
    assert!(case.secret.get("host").is_none());
    for _ in 0..3 {
        case.rotate().await;
    }
    assert_eq!(case.api.changes(&case.user), 3);
    case.cleanup().await;
}

async fn single_user_when_the_secret_asks(service: Service) {
    let (stack, redis) = require_redis!();
    let setup = Setup {
        strategy: Some("single-user"),
        ..DATA_PLANE
    };
    let mut case = Case::new(stack, redis, service, "cusingle", setup).await;
    case.rotate().await;
    case.rotate().await;
    case.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Waits and the deadline

async fn a_user_stuck_modifying_past_the_deadline(service: Service) {
    let (stack, redis) = require_redis!();
    let mut case = Case::new(stack, redis, service, "custuck", DATA_PLANE).await;
    let deadline = Duration::from_secs(4);
    case.function.deadline = Some(deadline);
    let token = case.start().await;
    case.function
        .invoke("createSecret", &case.arn, &token)
        .await
        .unwrap();
    // Another change keeps the user modifying longer than the invocation.
    case.api.hold(&case.user);
    let started = Instant::now();
    let err = case
        .function
        .invoke("setSecret", &case.arn, &token)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let (kind, text) = error_kind(&err);
    assert_eq!(kind, "DeadlineExceeded", "{text}");
    assert!(
        text.contains(&case.user.arn) && text.contains("modifying"),
        "{text}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    assert_eq!(
        case.api.changes(&case.user),
        0,
        "nothing sent to a modifying user"
    );
    case.current_logs_in().await;
    // The other change settles; the service re-drives the rotation with the same token.
    case.api.release(&case.user).await;
    case.function.rotate(&case.arn, &token).await.unwrap();
    case.rotated(&token).await;
    assert_eq!(case.api.changes(&case.user), 1);
    case.cleanup().await;
}

async fn a_change_settling_past_the_deadline(service: Service) {
    let (stack, redis) = require_redis!();
    let mut case = Case::new(stack, redis, service, "cuslow", DATA_PLANE).await;
    let deadline = Duration::from_secs(3);
    case.function.deadline = Some(deadline);
    // setSecret's change takes longer to reach the nodes than one invocation lasts.
    case.api
        .set_delay(&case.user, Some(Duration::from_millis(4_500)));
    let token = case.start().await;
    for step in ["createSecret", "setSecret"] {
        case.function.invoke(step, &case.arn, &token).await.unwrap();
    }
    let started = Instant::now();
    let err = case
        .function
        .invoke("testSecret", &case.arn, &token)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let (kind, text) = error_kind(&err);
    assert_eq!(kind, "DeadlineExceeded", "{text}");
    assert!(
        text.contains(&case.user.arn) && text.contains("modifying"),
        "{text}"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    case.current_logs_in().await;
    // Re-driven from createSecret with the same token, as the service does, until it completes:
    // each invocation waits within its own deadline, and none sends the change again (which
    // would start another modifying period for the next testSecret to wait out).
    let mut redriven = 0;
    loop {
        redriven += 1;
        assert!(redriven <= 6, "the rotation never completed");
        match case.function.rotate(&case.arn, &token).await {
            Ok(()) => break,
            Err(err) => assert_eq!(err.error_type(), "DeadlineExceeded", "{err}"),
        }
    }
    case.rotated(&token).await;
    assert_eq!(
        case.api.changes(&case.user),
        1,
        "re-driven {redriven} times"
    );
    case.cleanup().await;
}

async fn a_throttled_api_is_retried(service: Service) {
    let (stack, redis) = require_redis!();
    let mut case = Case::new(stack, redis, service, "cuthrottle", DATA_PLANE).await;
    let deadline = Duration::from_secs(20);
    case.function.deadline = Some(deadline);
    // Long enough that the retry after the lost answer finds the user still modifying.
    case.api.set_delay(&case.user, Some(Duration::from_secs(1)));
    let modify = service.modify_operation();
    case.api
        .fail("DescribeUsers", 3, When::Before, Answer::Throttle);
    case.api.fail(modify, 2, When::Before, Answer::Throttle);
    // The change is made, its answer lost (HTTP 500): the retry is refused with
    // InvalidUserState, and the function waits for the user and sends the same list again.
    case.api.fail(modify, 1, When::After, Answer::ServerError);
    let token = case.start().await;
    let started = Instant::now();
    case.function.rotate(&case.arn, &token).await.unwrap();
    assert!(started.elapsed() < deadline, "{:?}", started.elapsed());
    case.rotated(&token).await;
    assert_eq!(case.api.faults_served(), 6);
    let refused: Vec<_> = case.api.log().into_iter().filter_map(|c| c.error).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].starts_with("InvalidUserState"), "{refused:?}");
    assert_eq!(case.api.changes(&case.user), 2);
    case.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Refusals

async fn refusals_write_nothing(service: Service) {
    let (stack, redis) = require_redis!();
    let case = Case::new(stack, redis, service, "curefuse", Setup::default()).await;
    let other = case
        .api
        .create_user(service, "cuvictim", &[&fixture_password()])
        .await;
    let mut foreign = case.secret.clone();
    foreign["user_arn"] = json!(user_arn(service, "210987654321", &case.user.id));
    let mut misnamed = case.secret.clone();
    misnamed["username"] = json!(other.name);
    let mut alternating = case.secret.clone();
    alternating["rotation_strategy"] = json!("alternating-users");
    for (label, secret, expected, words) in [
        ("username", misnamed, "IdentityMismatch", other.name.clone()),
        (
            "account",
            foreign,
            "InvalidSecret",
            "210987654321".to_owned(),
        ),
        (
            "alternating",
            alternating,
            "InvalidSecret",
            "alternating".to_owned(),
        ),
    ] {
        let arn = create_secret(&case.client, &secret).await;
        let token = token();
        start_rotation(&case.client, &arn, &token).await;
        let before = snapshot(&case.client, &arn).await;
        let writes = case.function.app.store.writes();
        let err = case
            .function
            .invoke("createSecret", &arn, &token)
            .await
            .unwrap_err();
        let (kind, text) = error_kind(&err);
        assert_eq!(kind, expected, "{label}: {text}");
        assert!(text.contains(&words), "{label}: {text}");
        assert_eq!(snapshot(&case.client, &arn).await, before, "{label}");
        assert_eq!(case.function.app.store.writes(), writes, "{label}");
    }
    // A pending version naming another user (written by someone else between the steps).
    let token = case.start().await;
    let mut forged = case.secret.clone();
    forged["user_arn"] = json!(other.arn);
    forged["username"] = json!(other.name);
    put_pending(&case.client, &case.arn, &token, &forged.to_string()).await;
    let before = snapshot(&case.client, &case.arn).await;
    let writes = case.function.app.store.writes();
    let err = case
        .function
        .invoke("setSecret", &case.arn, &token)
        .await
        .unwrap_err();
    let (kind, text) = error_kind(&err);
    assert_eq!(kind, "IdentityMismatch", "{text}");
    assert_eq!(snapshot(&case.client, &case.arn).await, before);
    assert_eq!(case.function.app.store.writes(), writes);
    // No user was changed, and no change was even asked for.
    assert_eq!(case.api.changes(&case.user), 0);
    assert_eq!(case.api.changes(&other), 0);
    assert_eq!(case.api.calls(service.modify_operation()), 0);
    case.api.cleanup(&[&other]).await;
    case.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Faults at every step, re-driven

/// Where a fault strikes during one step.
#[derive(Debug, Clone, Copy)]
enum Strike {
    /// The emulator answers the step's next call of the operation (`None`: the service's
    /// change) with a non-retryable error, before or after serving it.
    Api(Option<&'static str>, When),
    /// Secrets Manager's first call of this name (and stage, when given) in the step, before or
    /// after moto serves it, answered with a non-retryable error.
    Sm(&'static str, Option<&'static str>, When),
    /// The data plane refuses every connection during the step.
    DataPlaneDown,
}

/// For each strike: a new rotation, the steps before `step` clean, `step` with the fault (which
/// must fail it, leaving `AWSCURRENT` logging in), then the whole rotation re-driven with the
/// same token, which must complete (`Case::rotated`) having changed the user's passwords exactly
/// once. The outcomes are written to `target/tmp/cache-user-faults-<engine>-<step>.txt`.
async fn faults_in(service: Service, step: &'static str, strikes: &[Strike]) {
    let (stack, redis) = require_redis!();
    let setup = Setup {
        proxies: true,
        ..DATA_PLANE
    };
    let mut case = Case::new(stack, redis, service, "cufault", setup).await;
    case.function.deadline = Some(Duration::from_secs(10));
    let trace = case.traced_rotation().await;
    let mut matrix = format!(
        "{} {step}: Secrets Manager calls {:?}\n",
        service.engine(),
        trace[step]
    );
    for strike in strikes {
        let token = case.start().await;
        let changes = case.api.changes(&case.user);
        let mut failed = String::new();
        for current in STEPS {
            if current != step {
                case.function
                    .invoke(current, &case.arn, &token)
                    .await
                    .unwrap();
                continue;
            }
            let sm = case.sm.as_ref().unwrap();
            let tcp = case.tcp.as_ref().unwrap();
            let first = sm.operations();
            match *strike {
                Strike::Api(op, when) => {
                    let op = op.unwrap_or(service.modify_operation());
                    case.api.fail(op, 1, when, Answer::Invalid);
                }
                Strike::Sm(name, stage, when) => {
                    let k = trace[step]
                        .iter()
                        .position(|(n, s)| n == name && (stage.is_none() || s.as_deref() == stage))
                        .unwrap_or_else(|| panic!("{step} makes no {name} {stage:?}"));
                    sm.add(Rule::Operation {
                        n: first + k + 1,
                        when,
                        answer: Answer::Invalid,
                    });
                }
                Strike::DataPlaneDown => tcp.set(Fault::Refuse),
            }
            let result = case.function.invoke(step, &case.arn, &token).await;
            let served = case.api.faults_served();
            let struck: Vec<String> = sm
                .log()
                .into_iter()
                .filter(|r| r.op > first && r.fault.is_some())
                .map(|r| r.name)
                .collect();
            case.api.clear_faults();
            sm.clear();
            tcp.set(Fault::Pass);
            let err = result.expect_err("the fault did not stop the step");
            failed = err.error_type().to_owned();
            match strike {
                Strike::Api(..) => assert!(served > 0, "{strike:?} never struck"),
                Strike::Sm(name, ..) => assert_eq!(struck, [*name], "{strike:?}"),
                Strike::DataPlaneDown => {}
            }
            break;
        }
        case.current_logs_in().await;
        let started = Instant::now();
        case.function
            .rotate(&case.arn, &token)
            .await
            .unwrap_or_else(|e| panic!("{step} {strike:?}: the re-driven rotation: {e}"));
        let redriven = started.elapsed();
        case.rotated(&token).await;
        assert_eq!(
            case.api.changes(&case.user) - changes,
            1,
            "{strike:?}: one change per rotation"
        );
        let _ = writeln!(
            matrix,
            "  {strike:?}: {step} failed with {failed}; re-driven to completion in {} ms",
            redriven.as_millis()
        );
    }
    report(
        &format!("cache-user-faults-{}-{step}.txt", service.engine()),
        &matrix,
    );
    case.cleanup().await;
}

async fn faults_in_create_secret(service: Service) {
    faults_in(
        service,
        "createSecret",
        &[
            Strike::Api(Some("DescribeUsers"), When::Before),
            Strike::Sm("GetSecretValue", Some("AWSCURRENT"), When::Before),
            Strike::Sm("PutSecretValue", None, When::After),
        ],
    )
    .await;
}

async fn faults_in_set_secret(service: Service) {
    faults_in(
        service,
        "setSecret",
        &[
            Strike::Sm("GetSecretValue", Some("AWSPENDING"), When::Before),
            Strike::Api(Some("DescribeUsers"), When::Before),
            Strike::DataPlaneDown,
            Strike::Api(None, When::Before),
            Strike::Api(None, When::After),
        ],
    )
    .await;
}

async fn faults_in_test_secret(service: Service) {
    faults_in(
        service,
        "testSecret",
        &[
            Strike::Sm("GetSecretValue", Some("AWSPENDING"), When::Before),
            Strike::Api(Some("DescribeUsers"), When::Before),
            Strike::DataPlaneDown,
        ],
    )
    .await;
}

async fn faults_in_finish_secret(service: Service) {
    faults_in(
        service,
        "finishSecret",
        &[
            Strike::Sm("DescribeSecret", None, When::Before),
            Strike::Sm("UpdateSecretVersionStage", None, When::After),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The configuration test and the doctor

/// What a sub-case does to the user before the configuration test.
type Spoil = dyn Fn(&CacheApi, &ApiUser);

async fn the_configuration_test(service: Service) {
    let (stack, redis) = require_redis!();
    let case = Case::new(stack, redis, service, "cuconfig", DATA_PLANE).await;
    // Rotation configured; then each check as RotateSecret with RotateImmediately=false makes
    // it: a copy of the current value staged under a new token, testSecret alone.
    case.start().await;
    let current = raw_value(&case.client, &case.arn, "AWSCURRENT").await;
    let spoil: [(&str, &Spoil, &str); 4] = [
        ("healthy", &|_, _| {}, ""),
        (
            "no password",
            &|api, user| api.forget_passwords(user),
            "holds no password",
        ),
        (
            "no-password authentication",
            &|api, user| api.set_authentication(user, "no-password"),
            "no-password",
        ),
        (
            "being deleted",
            &|api, user| api.set_status(user, "deleting"),
            "being deleted",
        ),
    ];
    for (label, spoil, words) in spoil {
        spoil(&case.api, &case.user);
        let token = token();
        put_pending(&case.client, &case.arn, &token, &current).await;
        let before = snapshot(&case.client, &case.arn).await;
        let result = case.function.invoke("testSecret", &case.arn, &token).await;
        match (label, result) {
            ("healthy", Ok(())) => {}
            (_, Err(err)) if !words.is_empty() => {
                let (kind, text) = error_kind(&err);
                assert_eq!(kind, "PreflightFailed", "{label}: {text}");
                assert!(text.contains(words), "{label}: {text}");
                assert!(text.contains(&case.user.id), "{label}: {text}");
            }
            (_, result) => panic!("{label}: {result:?}"),
        }
        assert_eq!(snapshot(&case.client, &case.arn).await, before, "{label}");
        assert_eq!(case.function.app.store.writes(), 0, "{label}");
        assert_eq!(case.api.changes(&case.user), 0, "{label}");
    }
    case.cleanup().await;
}

/// The doctor's `--login` audit of `arn` as if run at `now`; the leak check then scans its
/// logs and the report.
async fn audit(function: &Function, arn: &str, now: SystemTime) -> Report {
    let options = Options {
        secrets: vec![arn.to_owned()],
        login: true,
        ..Options::default()
    };
    let report = Doctor::new(&function.app).at(now).run(&options).await;
    check_leaks(None);
    let shown = format!("{}\n{:?}", report.to_json(), report.failures);
    assert_no_password_in(&shown, "the doctor's report");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

/// The audited secret's problems: code and detail.
fn problems(report: &Report) -> Vec<(&'static str, String)> {
    report.secrets[0]
        .problems
        .iter()
        .map(|p| (p.code.as_str(), p.detail.clone()))
        .collect()
}

async fn the_doctors_login_audit(service: Service) {
    let (stack, redis) = require_redis!();
    let mut case = Case::new(stack, redis, service, "cudoctor", DATA_PLANE).await;
    case.rotate().await;
    let report = audit(&case.function, &case.arn, SystemTime::now()).await;
    assert_eq!(problems(&report), []);
    assert_eq!(report.to_json()["secrets"][0]["healthy"], json!(true));

    // A rotation stopped after createSecret, its user stuck modifying ever since: seen three
    // hours later, longer than a rotation may take.
    let token = case.start().await;
    case.function
        .invoke("createSecret", &case.arn, &token)
        .await
        .unwrap();
    case.api.hold(&case.user);
    let later = SystemTime::now() + Duration::from_secs(3 * 3_600);
    let report = audit(&case.function, &case.arn, later).await;
    let found = problems(&report);
    let mut codes: Vec<_> = found.iter().map(|(code, _)| *code).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["stuck-pending", "user-not-ready"], "{found:?}");
    assert!(
        found.iter().any(|(code, detail)| *code == "user-not-ready"
            && detail.contains(&case.user.id)
            && detail.contains("modifying")),
        "{found:?}"
    );
    case.api.release(&case.user).await;

    // Being deleted; then gone.
    case.api.set_status(&case.user, "deleting");
    let report = audit(&case.function, &case.arn, SystemTime::now()).await;
    let found = problems(&report);
    assert!(
        found
            .iter()
            .any(|(code, detail)| *code == "user-not-ready" && detail.contains("deleted")),
        "{found:?}"
    );
    case.api.delete(&case.user);
    let report = audit(&case.function, &case.arn, SystemTime::now()).await;
    let found = problems(&report);
    assert!(
        found
            .iter()
            .any(|(code, detail)| *code == "invalid-secret" && detail.contains("does not exist")),
        "{found:?}"
    );
    assert_eq!(report.to_json()["secrets"][0]["healthy"], json!(false));
    case.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// moto

/// The function against moto's own user APIs, an implementation of the same protocols that
/// this suite's emulator did not write: three rotations of a MemoryDB user (moto's users are
/// always `active` and reach no server, so the secret names no data plane), and ElastiCache's
/// `DescribeUsers` (moto has no `ModifyUser`), read by createSecret's identity check.
#[cfg(all(feature = "elasticache", feature = "memorydb"))]
#[tokio::test]
async fn moto_reads_the_same_answers() {
    use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType};

    let stack = require_stack!();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&stack.secrets_manager)
        .load()
        .await;
    let client = sm_client().await;
    let function = function_with_cache_endpoint(stack, &stack.secrets_manager, None).await;

    let memorydb = aws_sdk_memorydb::Client::new(&sdk);
    let name = unique("cumoto").replace('_', "-");
    let mut password = fixture_password();
    memorydb
        .create_user()
        .user_name(&name)
        .access_string("on ~cache:* +ping")
        .authentication_mode(
            AuthenticationMode::builder()
                .r#type(InputAuthenticationType::Password)
                .passwords(&password)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let secret = json!({
        "user_arn": user_arn(Service::MemoryDb, ACCOUNT, &name),
        "username": name,
        "password": password,
    });
    let arn = create_secret(&client, &secret).await;
    for _ in 0..3 {
        let token = token();
        start_rotation(&client, &arn, &token).await;
        function.rotate(&arn, &token).await.unwrap();
        let previous = value(&client, &arn, "AWSPREVIOUS").await;
        assert!(previous["password"] == json!(password), "AWSPREVIOUS");
        password = current_password(&client, &arn).await;
        let described = memorydb
            .describe_users()
            .user_name(&name)
            .send()
            .await
            .unwrap();
        let user = &described.users()[0];
        assert_eq!(user.status(), Some("active"));
        let authentication = user.authentication().unwrap();
        assert_eq!(authentication.password_count(), Some(2));
    }
    memorydb
        .delete_user()
        .user_name(&name)
        .send()
        .await
        .unwrap();

    let elasticache = aws_sdk_elasticache::Client::new(&sdk);
    let name = unique("cumoto").replace('_', "-");
    let id = format!("id-{name}");
    let password = fixture_password();
    elasticache
        .create_user()
        .user_id(&id)
        .user_name(&name)
        .engine("redis")
        .access_string("on ~cache:* +ping")
        .passwords(&password)
        .send()
        .await
        .unwrap();
    let mut secret = json!({
        "user_arn": user_arn(Service::ElastiCache, ACCOUNT, &id),
        "username": name,
        "password": password,
        "engine": "elasticache",
    });
    let arn = create_secret(&client, &secret).await;
    let first = token();
    start_rotation(&client, &arn, &first).await;
    function.invoke("createSecret", &arn, &first).await.unwrap();
    secret["username"] = json!("someone-else");
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let err = function
        .invoke("createSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    elasticache.delete_user().user_id(&id).send().await.unwrap();
}
