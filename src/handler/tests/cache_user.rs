//! ElastiCache and MemoryDB users against the in-memory services: rotations that keep two
//! passwords through the API, the waits within the deadline, the data plane, and the refusals.

use super::*;
use crate::cache_user::fake::{FakeUser, arn};
use crate::cache_user::{AuthType, Service, UserStatus};

const PASSWORDS: [&str; 4] = [
    "SENTINEL-cache-0-pw-:'",
    "SENTINEL-cache-1-pw-:'",
    "SENTINEL-cache-2-pw-:'",
    "SENTINEL-cache-3-pw-:'",
];

/// The secret of user `app-user` (named `app`) of `service`, AWS's shape: no `engine`.
fn cache_secret(service: Service) -> Value {
    json!({
        "user_arn": arn(service, "app-user"),
        "username": "app",
        "password": PASSWORDS[0],
        "custom": {"keep": true},
    })
}

/// A store holding `secret`, and a database whose `service` has the user with `PASSWORDS[0]`.
fn cache_setup(service: Service, secret: &Value) -> (FakeSecrets, FakeDb) {
    let store = secrets(secret);
    let db = FakeDb::default();
    db.cache_users.users.borrow_mut().push(FakeUser::new(
        service,
        "app-user",
        "app",
        &[PASSWORDS[0]],
    ));
    (store, db)
}

/// Runs `names` in `app`, each new password being `PASSWORDS[round]`.
async fn cache_steps(app: &TestApp, names: &[&str], round: usize) -> Result<(), Error> {
    let password = |_: Family| Password::new(PASSWORDS[round]);
    for name in names {
        run(&event(name), deadline(), app, &password).await?;
    }
    Ok(())
}

fn logs_in(db: &FakeDb, password: &str) -> bool {
    db.cache_users.logs_in("app-user", &Password::new(password))
}

#[tokio::test(start_paused = true)]
async fn three_rotations_keep_current_and_previous_and_drop_the_one_before() {
    for service in [Service::ElastiCache, Service::MemoryDb] {
        let secret = cache_secret(service);
        let (store, db) = cache_setup(service, &secret);
        for round in 1..=3 {
            if round > 1 {
                next_rotation(&store, round);
            }
            let app = container(&store, &db);
            cache_steps(&app, &ROTATION, round)
                .await
                .unwrap_or_else(|e| panic!("{service} round {round}: {e}"));
            let current = store.value(TOKEN).unwrap();
            let mut expected = secret.clone();
            expected["password"] = json!(PASSWORDS[round]);
            assert_eq!(current, expected, "only the password changed");
            assert!(logs_in(&db, PASSWORDS[round]), "{service} {round}: current");
            assert!(
                logs_in(&db, PASSWORDS[round - 1]),
                "{service} {round}: previous"
            );
            if round > 1 {
                assert!(
                    !logs_in(&db, PASSWORDS[round - 2]),
                    "{service} {round}: before"
                );
            }
        }
        // Per rotation: one look at createSecret and setSecret, one before the change, one
        // after it (modifying), one when active again at testSecret.
        assert_eq!(db.cache_users.count("set:app-user:2"), 3, "{service}");
        assert!(
            db.logins.borrow().is_empty(),
            "no data plane named: no AUTH"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn single_user_when_the_secret_asks_and_alternating_users_refused() {
    let mut secret = cache_secret(Service::MemoryDb);
    secret["rotation_strategy"] = json!("single-user");
    let (store, db) = cache_setup(Service::MemoryDb, &secret);
    let app = container(&store, &db);
    cache_steps(&app, &ROTATION, 1).await.unwrap();
    assert!(logs_in(&db, PASSWORDS[1]) && !logs_in(&db, PASSWORDS[0]));
    assert_eq!(db.cache_users.count("set:app-user:1"), 1);

    // ROTATION_STRATEGY is the databases' default: a cache user without the key is dual.
    let secret = cache_secret(Service::ElastiCache);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let config = Config {
        strategy: Strategy::SingleUser,
        ..Config::default()
    };
    let app = container_with(&store, &db, config);
    cache_steps(&app, &ROTATION, 1).await.unwrap();
    assert!(logs_in(&db, PASSWORDS[1]) && logs_in(&db, PASSWORDS[0]));

    let mut secret = cache_secret(Service::ElastiCache);
    secret["rotation_strategy"] = json!("alternating-users");
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let before = store.snapshot();
    let err = cache_steps(&container(&store, &db), &["createSecret"], 1)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret");
    assert!(err.to_string().contains("use dual-password"), "{err}");
    assert_eq!(store.snapshot(), before);
}

#[tokio::test(start_paused = true)]
async fn a_secret_cannot_steer_the_function_to_another_user() {
    // Another account's user: refused before any call.
    let mut secret = cache_secret(Service::ElastiCache);
    secret["user_arn"] = json!("arn:aws:elasticache:us-east-1:210987654321:user:app-user");
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let err = cache_steps(&container(&store, &db), &["createSecret"], 1)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "InvalidSecret", "{err}");
    assert!(err.to_string().contains("account 210987654321"), "{err}");
    assert!(db.cache_users.calls.borrow().is_empty());

    // A user whose name is not the secret's.
    let mut secret = cache_secret(Service::ElastiCache);
    secret["username"] = json!("admin");
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let before = store.snapshot();
    let err = cache_steps(&container(&store, &db), &["createSecret"], 1)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "IdentityMismatch", "{err}");
    assert_eq!(store.snapshot(), before);

    // A forged pending version naming another user, or another data plane.
    for (key, value) in [
        ("user_arn", json!(arn(Service::ElastiCache, "admin-user"))),
        ("host", json!("attacker.example")),
    ] {
        let secret = cache_secret(Service::ElastiCache);
        let (store, db) = cache_setup(Service::ElastiCache, &secret);
        let mut pending = secret.clone();
        pending["password"] = json!(PASSWORDS[1]);
        pending[key] = value;
        store.set_version(TOKEN, Some(pending.to_string()), &["AWSPENDING"]);
        let err = cache_steps(&container(&store, &db), &["setSecret"], 1)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "IdentityMismatch", "{key}: {err}");
        assert_eq!(db.cache_users.count("set"), 0, "{key}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_named_data_plane_proves_current_before_the_change_and_pending_after() {
    let mut secret = cache_secret(Service::ElastiCache);
    secret["host"] = json!(HOST);
    secret["ssl"] = json!(true);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    for round in 1..=2 {
        if round > 1 {
            next_rotation(&store, round);
        }
        cache_steps(&container(&store, &db), &ROTATION, round)
            .await
            .unwrap();
    }
    // Round 1: current at setSecret, pending at testSecret. Round 2: current, then previous
    // (still logging in: the list is not in place yet), then pending at testSecret. No login on
    // the normal path is refused.
    let logins = db.logins.borrow().clone();
    assert_eq!(logins.len(), 5, "{logins:?}");
    assert!(
        logins.iter().all(|(user, ok)| user == "app" && *ok),
        "{logins:?}"
    );
    assert_eq!(db.cache_users.count("set"), 2);

    // The current password does not AUTH: the holder of the secret does not own the user.
    let mut secret = cache_secret(Service::ElastiCache);
    secret["host"] = json!(HOST);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    db.cache_users.users.borrow_mut()[0].passwords = vec![Password::new("someone-elses-pw-0123")];
    let app = container(&store, &db);
    cache_steps(&app, &["createSecret"], 1).await.unwrap();
    let err = cache_steps(&app, &["setSecret"], 1).await.unwrap_err();
    assert_eq!(err.error_type(), "LoginFailed", "{err}");
    assert_eq!(db.cache_users.count("set"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_re_driven_set_secret_whose_list_is_in_place_sends_nothing() {
    let mut secret = cache_secret(Service::MemoryDb);
    secret["host"] = json!(HOST);
    secret["ssl"] = json!(true);
    let (store, db) = cache_setup(Service::MemoryDb, &secret);
    // A change takes three looks to settle: longer than the setSecret that sent it waits.
    db.cache_users.users.borrow_mut()[0].settle_after = 3;
    let app = container(&store, &db);
    cache_steps(&app, &["createSecret", "setSecret"], 1)
        .await
        .unwrap();
    assert_eq!(db.cache_users.count("set"), 1);
    // The service re-drives the rotation: setSecret waits for the change under way, finds
    // pending and current both logging in and two passwords held, and sends nothing, so no new
    // modifying period starts.
    cache_steps(&app, &ROTATION, 1).await.unwrap();
    assert_eq!(db.cache_users.count("set"), 1);
    assert!(logs_in(&db, PASSWORDS[1]) && logs_in(&db, PASSWORDS[0]));
    assert_eq!(store.stages(TOKEN), ["AWSPENDING", "AWSCURRENT"]);

    // Single user: current logging in means the list is not in place, so pending is not tried;
    // re-driven, current is refused and pending logs in, as before.
    let mut secret = cache_secret(Service::ElastiCache);
    secret["host"] = json!(HOST);
    secret["ssl"] = json!(true);
    secret["rotation_strategy"] = json!("single-user");
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let app = container(&store, &db);
    cache_steps(&app, &["createSecret", "setSecret"], 1)
        .await
        .unwrap();
    assert_eq!(*db.logins.borrow(), [("app".to_owned(), true)]);
    cache_steps(&app, &ROTATION, 1).await.unwrap();
    assert_eq!(db.cache_users.count("set"), 1);
    assert!(logs_in(&db, PASSWORDS[1]) && !logs_in(&db, PASSWORDS[0]));
}

#[tokio::test(start_paused = true)]
async fn a_user_stuck_modifying_ends_the_step_before_the_deadline_and_the_retry_completes() {
    let secret = cache_secret(Service::ElastiCache);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let app = container(&store, &db);
    cache_steps(&app, &["createSecret"], 1).await.unwrap();
    // Another change keeps the user modifying far longer than the invocation.
    {
        let mut users = db.cache_users.users.borrow_mut();
        let user = users.remove(0).modifying_for(1_000);
        users.push(user);
    }
    let password = |_: Family| Password::new(PASSWORDS[1]);
    let budget = Duration::from_secs(20);
    let started = tokio::time::Instant::now();
    let err = run(
        &event("setSecret"),
        Deadline::new(
            Some(std::time::Instant::now() + budget),
            Duration::from_secs(5),
        ),
        &app,
        &password,
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "DeadlineExceeded", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("app-user") && text.contains("modifying"),
        "{text}"
    );
    assert!(started.elapsed() < budget, "{:?}", started.elapsed());
    assert_eq!(db.cache_users.count("set"), 0);
    // The change settles; Secrets Manager's retry completes the rotation.
    db.cache_users.users.borrow_mut()[0].settling = 0;
    db.cache_users.users.borrow_mut()[0].user.status = crate::cache_user::UserStatus::Active;
    cache_steps(&app, &["setSecret", "testSecret", "finishSecret"], 1)
        .await
        .unwrap();
    assert!(logs_in(&db, PASSWORDS[1]) && logs_in(&db, PASSWORDS[0]));
}

#[tokio::test(start_paused = true)]
async fn a_throttled_api_is_retried_and_a_retried_step_changes_nothing_more() {
    let secret = cache_secret(Service::MemoryDb);
    let (store, db) = cache_setup(Service::MemoryDb, &secret);
    let app = container(&store, &db);
    db.cache_users.throttle.set(3);
    cache_steps(&app, &["createSecret", "setSecret"], 1)
        .await
        .unwrap();
    // A retried setSecret sends the same list again, harmlessly; testSecret waits it out.
    cache_steps(&app, &["setSecret", "testSecret", "finishSecret"], 1)
        .await
        .unwrap();
    assert_eq!(db.cache_users.count("set:app-user:2"), 2);
    assert!(logs_in(&db, PASSWORDS[1]) && logs_in(&db, PASSWORDS[0]));
    assert_eq!(store.stages(TOKEN), ["AWSPENDING", "AWSCURRENT"]);
}

#[tokio::test(start_paused = true)]
async fn the_configuration_test_checks_the_user_and_writes_nothing() {
    let secret = cache_secret(Service::ElastiCache);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    store.set_version(TOKEN, Some(secret.to_string()), &["AWSPENDING"]);
    let app = container(&store, &db);
    cache_steps(&app, &["testSecret"], 1).await.unwrap();
    // A user holding no password: the next rotation's current could not log in.
    db.cache_users.users.borrow_mut()[0].user.password_count = Some(0);
    let err = cache_steps(&app, &["testSecret"], 1).await.unwrap_err();
    assert_eq!(err.error_type(), "PreflightFailed", "{err}");
    assert!(err.to_string().contains("holds no password"), "{err}");
    // A user that authenticates otherwise, or is being deleted: the preflight's verdict too,
    // not the error of the wait or of the identity check that would meet it later.
    db.cache_users.users.borrow_mut()[0].user.authentication = AuthType::NoPassword;
    let err = cache_steps(&app, &["testSecret"], 1).await.unwrap_err();
    assert_eq!(err.error_type(), "PreflightFailed", "{err}");
    assert!(err.to_string().contains("no-password"), "{err}");
    db.cache_users.users.borrow_mut()[0].user.authentication = AuthType::Password;
    db.cache_users.users.borrow_mut()[0].user.password_count = Some(1);
    db.cache_users.users.borrow_mut()[0].user.status = UserStatus::Deleting;
    let err = cache_steps(&app, &["testSecret"], 1).await.unwrap_err();
    assert_eq!(err.error_type(), "PreflightFailed", "{err}");
    assert!(err.to_string().contains("being deleted"), "{err}");
    db.cache_users.users.borrow_mut().clear();
    let err = cache_steps(&app, &["testSecret"], 1).await.unwrap_err();
    assert_eq!(err.error_type(), "PreflightFailed", "{err}");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(store.calls.get().writes(), 0);
    assert_eq!(db.cache_users.count("set"), 0);
}

#[tokio::test(start_paused = true)]
async fn no_cache_user_password_reaches_logs_or_errors() {
    let secret = cache_secret(Service::ElastiCache);
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let app = container(&store, &db);
    cache_steps(&app, &ROTATION, 1).await.unwrap();
    let mut secret = cache_secret(Service::ElastiCache);
    secret["username"] = json!("admin");
    let (store, db) = cache_setup(Service::ElastiCache, &secret);
    let err = cache_steps(&container(&store, &db), &["createSecret"], 1)
        .await
        .unwrap_err();
    let diagnostic: lambda_runtime::Diagnostic = err.into();
    assert!(!format!("{diagnostic:?}").contains("SENTINEL"));
    assert!(
        !capture::logs().contains("SENTINEL-cache"),
        "a password reached the logs"
    );
}
