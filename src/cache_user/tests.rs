//! The cache-user pieces against the in-memory services, on tokio's paused clock: what is
//! refused, what is sent, how long a wait may last.

use std::time::{Duration, Instant as StdInstant};

use super::fake::{ACCOUNT, FakeCacheUsers, FakeUser, REGION, arn};
use super::*;
use crate::deadline::{CallTally, Deadline};
use crate::protocol::{Stage, Step, Strategy};

/// A password that must never appear in any output.
const SENTINEL: &str = "Sentinel-7c1e-pw-0123456789";
const CURRENT: &str = "current-password-0123456789";
const PENDING: &str = "pending-password-0123456789";
const PREVIOUS: &str = "previous-password-012345678";
const SECRET_ID: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cache-AbCdEf";

fn home() -> Home {
    Home {
        partition: "aws".to_owned(),
        account: ACCOUNT.to_owned(),
        region: REGION.to_owned(),
    }
}

fn ctx<'a>(step: &'a Step, tally: &'a CallTally, deadline: Deadline) -> StepContext<'a> {
    StepContext {
        secret_id: SECRET_ID,
        step,
        deadline,
        tally,
    }
}

/// A deadline `secs` seconds from now.
fn deadline_in(secs: u64) -> Deadline {
    Deadline::new(
        Some(StdInstant::now() + Duration::from_secs(secs)),
        Duration::from_secs(5),
    )
}

fn user_arn(service: Service, id: &str) -> UserArn {
    UserArn::parse(&arn(service, id)).expect("a valid ARN")
}

fn secret_json(service: Service, id: &str, username: &str, password: &str) -> String {
    serde_json::json!({
        "user_arn": arn(service, id),
        "username": username,
        "password": password,
    })
    .to_string()
}

fn password(p: &str) -> Password {
    Password::new(p)
}

use crate::credentials::Password;

// --- ARNs ----------------------------------------------------------------------------------

#[test]
fn user_arns_of_both_services_parse() {
    let ec = UserArn::parse("arn:aws:elasticache:eu-west-1:111122223333:user:app-1").unwrap();
    assert_eq!(ec.service(), Service::ElastiCache);
    assert_eq!(
        (ec.id(), ec.account(), ec.region()),
        ("app-1", "111122223333", "eu-west-1")
    );
    let mdb = UserArn::parse("arn:aws-cn:memorydb:cn-north-1:111122223333:user/app").unwrap();
    assert_eq!((mdb.service(), mdb.id()), (Service::MemoryDb, "app"));
    assert_eq!(
        mdb.to_string(),
        "arn:aws-cn:memorydb:cn-north-1:111122223333:user/app"
    );
}

#[test]
fn anything_else_is_not_a_user_arn() {
    for bad in [
        "",
        "app",
        "arn:aws:elasticache:eu-west-1:111122223333",
        "arn:aws:elasticache:eu-west-1:111122223333:user/app",
        "arn:aws:memorydb:eu-west-1:111122223333:user:app",
        "arn:aws:elasticache:eu-west-1:111122223333:usergroup:g",
        "arn:aws:elasticache:eu-west-1:111122223333:user:",
        "arn:aws:elasticache:eu-west-1:111122223333:user:*",
        "arn:aws:elasticache:eu-west-1:111122223333:user:app:other",
        "arn:aws:memorydb:eu-west-1:111122223333:user/app/other",
        "arn:aws:elasticache:eu-west-1:111122223333:user:1app",
        "arn:aws:elasticache:eu-west-1:111122223333:user:app 1",
        "arn:aws:elasticache:eu-west-1:11112222333:user:app",
        "arn:aws:elasticache::111122223333:user:app",
        "arn:aws:elasticache:EU-WEST-1:111122223333:user:app",
        "arn::elasticache:eu-west-1:111122223333:user:app",
        "arn:aws:rds:eu-west-1:111122223333:db:app",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app",
    ] {
        assert!(UserArn::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[test]
fn only_the_functions_own_account_region_and_partition() {
    let own = user_arn(Service::ElastiCache, "app-1");
    assert!(own.check_home(&home()).is_ok());
    for other in [
        "arn:aws:elasticache:us-east-1:999999999999:user:app-1",
        "arn:aws:elasticache:eu-west-1:123456789012:user:app-1",
        "arn:aws-us-gov:elasticache:us-east-1:123456789012:user:app-1",
        "arn:aws:memorydb:us-west-2:123456789012:user/app",
    ] {
        let problem = UserArn::parse(other)
            .unwrap()
            .check_home(&home())
            .unwrap_err();
        assert!(
            problem.contains(ACCOUNT) && problem.contains(REGION),
            "names the function's own account and Region: {problem}"
        );
    }
}

#[test]
fn the_functions_home_comes_from_its_own_arn() {
    let home =
        Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator")
            .unwrap();
    assert_eq!(home, self::home());
    let qualified =
        Home::from_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:f:live")
            .unwrap();
    assert_eq!(
        (qualified.partition.as_str(), qualified.region.as_str()),
        ("aws-cn", "cn-north-1")
    );
    for bad in [
        "",
        "arn:aws:lambda:us-east-1:123456789012:layer:l",
        "arn:aws:lambda:us-east-1:123456789012:function:",
        "arn:aws:lambda:us-east-1:12345678901:function:f",
        "arn:aws:iam::123456789012:role/r",
    ] {
        assert_eq!(Home::from_function_arn(bad), None, "{bad:?}");
    }
}

// --- the secret ----------------------------------------------------------------------------

#[test]
fn the_secret_parses_keeps_unknown_keys_and_swaps_only_the_password() {
    let text = format!(
        r#"{{"custom":[1,"x"],"user_arn":"{}","username":"app","password":"{CURRENT}","port":"6379"}}"#,
        arn(Service::ElastiCache, "app-1")
    );
    let secret = CacheUserSecret::parse(SECRET_ID, Stage::Current, &text, &home()).unwrap();
    assert_eq!(secret.service(), Service::ElastiCache);
    assert_eq!(secret.user().id(), "app-1");
    assert_eq!(secret.username(), "app");
    assert_eq!(secret.rotation_strategy(), None);
    let next = secret.with_password(password(PENDING));
    assert_eq!(next.password(), &password(PENDING));
    assert_eq!(
        next.to_json(),
        text.replace(CURRENT, PENDING),
        "keys keep their order and types"
    );
    let single = format!(
        r#"{{"user_arn":"{}","username":"app","password":"{CURRENT}","engine":"memorydb","rotation_strategy":"single-user"}}"#,
        arn(Service::MemoryDb, "app")
    );
    let single = CacheUserSecret::parse(SECRET_ID, Stage::Pending, &single, &home()).unwrap();
    assert_eq!(single.service(), Service::MemoryDb);
    assert_eq!(single.rotation_strategy(), Some(Strategy::SingleUser));
}

#[test]
fn secret_errors_name_the_field_and_the_arn_never_a_value() {
    let other_account = "arn:aws:elasticache:us-east-1:999999999999:user:admin";
    let cases: Vec<(String, &str)> = vec![
        (
            format!(r#"{{"username":"app","password":"{SENTINEL}"}}"#),
            "user_arn key is missing",
        ),
        (
            format!(r#"{{"user_arn":"not-an-arn","username":"app","password":"{SENTINEL}"}}"#),
            "field `user_arn` (not-an-arn) is not an ARN",
        ),
        (
            format!(r#"{{"user_arn":"{other_account}","username":"app","password":"{SENTINEL}"}}"#),
            "field `user_arn` (arn:aws:elasticache:us-east-1:999999999999:user:admin) names a user in account 999999999999",
        ),
        (
            format!(
                r#"{{"user_arn":"{}","username":"app","password":"{SENTINEL}","engine":"memorydb"}}"#,
                arn(Service::ElastiCache, "app-1")
            ),
            "field `engine` must be `elasticache`",
        ),
        (
            format!(
                r#"{{"user_arn":"{}","password":"{SENTINEL}"}}"#,
                arn(Service::MemoryDb, "app")
            ),
            "username key is missing",
        ),
        (
            format!(
                r#"{{"user_arn":"{}","username":"app"}}"#,
                arn(Service::MemoryDb, "app")
            ),
            "password key is missing",
        ),
        (
            format!(
                r#"{{"user_arn":"{}","username":"app","password":"{SENTINEL}","rotation_strategy":"twice"}}"#,
                arn(Service::MemoryDb, "app")
            ),
            "field `rotation_strategy` is not supported",
        ),
        (format!(r#"["{SENTINEL}"]"#), "must be a JSON object"),
        (format!(r#"{{"password":"{SENTINEL}""#), "not valid JSON"),
    ];
    for (text, expected) in cases {
        let e = CacheUserSecret::parse(SECRET_ID, Stage::Current, &text, &home()).unwrap_err();
        assert_eq!(e.error_type(), "InvalidSecret", "{e}");
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(expected), "{expected:?} not in {shown}");
        assert!(
            shown.contains(SECRET_ID) && shown.contains("AWSCURRENT"),
            "{shown}"
        );
        assert!(!shown.contains(SENTINEL), "the password leaked: {shown}");
    }
}

#[test]
fn debug_of_secret_and_password_set_shows_no_password() {
    let secret = CacheUserSecret::parse(
        SECRET_ID,
        Stage::Current,
        &secret_json(Service::ElastiCache, "app-1", "app", SENTINEL),
        &home(),
    )
    .unwrap();
    let set = PasswordSet::dual(password(SENTINEL), password(CURRENT));
    let shown = format!(
        "{secret:?} {set:?} {:?}",
        PasswordSet::single(password(SENTINEL))
    );
    assert!(
        !shown.contains(SENTINEL) && !shown.contains(CURRENT),
        "{shown}"
    );
    assert!(
        shown.contains("app-1") && shown.contains("<redacted>"),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_secrets_username_must_be_the_users_name() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::ElastiCache,
        "admin-1",
        "admin",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    // A secret forged to name another user of the account, under its own user name.
    let forged = CacheUserSecret::parse(
        SECRET_ID,
        Stage::Current,
        &secret_json(Service::ElastiCache, "admin-1", "app", SENTINEL),
        &home(),
    )
    .unwrap();
    let user = api.describe(forged.user(), &ctx).await.unwrap().unwrap();
    let e = forged.check_user(&user, Stage::Current, &ctx).unwrap_err();
    assert_eq!(e.error_type(), "IdentityMismatch");
    let shown = e.to_string();
    assert!(
        shown.contains("user app other than")
            && shown.contains("admin (arn:aws:elasticache:us-east-1:123456789012:user:admin-1)"),
        "{shown}"
    );
    // An IAM user has no password to rotate.
    let mut iam = user.clone();
    iam.name = "app".to_owned();
    iam.authentication = AuthType::Iam;
    let e = forged.check_user(&iam, Stage::Current, &ctx).unwrap_err();
    assert_eq!(e.error_type(), "InvalidSecret");
    assert!(e.to_string().contains("authenticates by iam"), "{e}");
}

#[test]
fn pending_must_name_currents_user() {
    let parse =
        |json: String| CacheUserSecret::parse(SECRET_ID, Stage::Pending, &json, &home()).unwrap();
    let current = parse(secret_json(Service::MemoryDb, "app", "app", CURRENT));
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let same = parse(secret_json(Service::MemoryDb, "app", "app", PENDING));
    assert!(current.check_same_user(&same, &ctx).is_ok());
    for (other, what) in [
        (
            parse(secret_json(Service::MemoryDb, "admin", "app", PENDING)),
            "user_arn",
        ),
        (
            parse(secret_json(Service::MemoryDb, "app", "App", PENDING)),
            "user App",
        ),
    ] {
        let e = current.check_same_user(&other, &ctx).unwrap_err();
        assert_eq!(e.error_type(), "IdentityMismatch");
        assert!(e.to_string().contains(what), "{e}");
        assert!(!format!("{e:?}").contains(PENDING));
    }
}

// --- waiting -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_active_user_costs_one_look() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::MemoryDb,
        "app",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::TestSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let user = wait_active(&api, &user_arn(Service::MemoryDb, "app"), &ctx)
        .await
        .unwrap();
    assert_eq!(
        (user.status, user.password_count),
        (UserStatus::Active, Some(1))
    );
    assert_eq!(api.count("describe"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_modifying_user_is_waited_for_with_backoff() {
    let api = FakeCacheUsers::with(vec![
        FakeUser::new(Service::ElastiCache, "app-1", "app", &[CURRENT]).modifying_for(4),
    ]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let started = tokio::time::Instant::now();
    let user = wait_active(&api, &user_arn(Service::ElastiCache, "app-1"), &ctx)
        .await
        .unwrap();
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!(
        api.count("describe"),
        5,
        "four looks see modifying, the fifth active"
    );
    // Delays of 0.5-1, 1-2, 2-4 and 4-8 s.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(7500) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_user_stuck_in_modifying_ends_the_step_before_the_deadline() {
    // `modifying_for(0)`: the change never settles.
    let api = FakeCacheUsers::with(vec![
        FakeUser::new(Service::ElastiCache, "app-1", "app", &[CURRENT]).modifying_for(0),
    ]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let started = tokio::time::Instant::now();
    let e = wait_active(&api, &user_arn(Service::ElastiCache, "app-1"), &ctx)
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert_eq!(e.error_type(), "DeadlineExceeded");
    let shown = e.to_string();
    assert!(
        shown.contains("setSecret")
            && shown
                .contains("ElastiCache user arn:aws:elasticache:us-east-1:123456789012:user:app-1")
            && shown.contains("became active (it was last seen modifying, after"),
        "{shown}"
    );
    // 30 s less the 1 s safety margin, and not much less: the budget is used, not exceeded.
    assert!(
        waited <= Duration::from_secs(29) && waited >= Duration::from_secs(28),
        "{waited:?}"
    );
    let looks = api.count("describe");
    assert!(
        (5..=12).contains(&looks),
        "a look every few seconds, not a busy loop: {looks}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_time_left_means_no_look_at_all() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::MemoryDb,
        "app",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::TestSecret, CallTally::new());
    // Less than the safety margin left.
    let deadline = Deadline::new(
        Some(StdInstant::now() + Duration::from_millis(900)),
        Duration::from_secs(5),
    );
    let ctx = ctx(&step, &tally, deadline);
    let e = wait_active(&api, &user_arn(Service::MemoryDb, "app"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "DeadlineExceeded");
    assert!(e.to_string().contains("MemoryDB DescribeUsers"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn throttled_looks_are_retried_and_counted() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::MemoryDb,
        "app",
        "app",
        &[CURRENT],
    )]);
    api.throttle.set(3);
    let (step, tally) = (Step::TestSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let user = wait_active(&api, &user_arn(Service::MemoryDb, "app"), &ctx)
        .await
        .unwrap();
    assert_eq!(user.status, UserStatus::Active);
    assert_eq!((tally.throttled(), tally.retries()), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_missing_or_deleted_user_or_a_refusal_is_the_services_error() {
    let api = FakeCacheUsers::with(vec![{
        let mut gone = FakeUser::new(Service::ElastiCache, "gone-1", "gone", &[CURRENT]);
        gone.user.status = UserStatus::Deleting;
        gone
    }]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let e = wait_active(&api, &user_arn(Service::ElastiCache, "nobody"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "ElastiCacheError");
    assert!(
        e.to_string()
            .contains("DescribeUsers of user arn:aws:elasticache")
            && e.to_string().contains("does not exist"),
        "{e}"
    );
    assert!(matches!(&e, Error::ElastiCache(f) if f.code.as_deref() == Some("UserNotFound")));
    let e = wait_active(&api, &user_arn(Service::ElastiCache, "gone-1"), &ctx)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("being deleted"), "{e}");
    api.denied.set(true);
    let e = wait_active(&api, &user_arn(Service::MemoryDb, "app"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "MemoryDbError");
    assert!(matches!(&e, Error::MemoryDb(f) if f.code.as_deref() == Some("AccessDenied")));
}

// --- setting passwords ---------------------------------------------------------------------

fn dual() -> PasswordSet {
    PasswordSet::dual(password(PENDING), password(CURRENT))
}

#[tokio::test(start_paused = true)]
async fn dual_password_keeps_current_beside_pending_and_drops_the_older_one() {
    for service in [Service::ElastiCache, Service::MemoryDb] {
        let api = FakeCacheUsers::with(vec![FakeUser::new(
            service,
            "app",
            "app",
            &[CURRENT, PREVIOUS],
        )]);
        let (step, tally) = (Step::SetSecret, CallTally::new());
        let ctx = ctx(&step, &tally, deadline_in(30));
        let user = user_arn(service, "app");
        let outcome = set_passwords(&api, &user, &dual(), Holding::Unknown, &ctx)
            .await
            .unwrap();
        assert_eq!(outcome, SetOutcome::Sent);
        assert_eq!(api.passwords("app"), [password(PENDING), password(CURRENT)]);
        assert!(!api.logs_in("app", &password(PREVIOUS)));
        assert_eq!(api.count("set:app:2"), 1);
        // testSecret's wait: modifying once, then active with two passwords.
        let settled = wait_active(&api, &user, &ctx).await.unwrap();
        assert_eq!(settled.password_count, Some(2));
    }
}

#[tokio::test(start_paused = true)]
async fn single_user_sets_pending_alone() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::MemoryDb,
        "app",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let set = PasswordSet::single(password(PENDING));
    set_passwords(
        &api,
        &user_arn(Service::MemoryDb, "app"),
        &set,
        Holding::Unknown,
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(api.passwords("app"), [password(PENDING)]);
    assert_eq!(api.count("set:app:1"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_repeat_ends_in_the_same_state_and_proof_of_the_data_plane_skips_it() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::ElastiCache,
        "app-1",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let user = user_arn(Service::ElastiCache, "app-1");
    set_passwords(&api, &user, &dual(), Holding::Unknown, &ctx)
        .await
        .unwrap();
    let after_first = api.passwords("app-1");
    // The retried step without data-plane proof: the same list again, once the user is active.
    let outcome = set_passwords(&api, &user, &dual(), Holding::Unknown, &ctx)
        .await
        .unwrap();
    assert_eq!(outcome, SetOutcome::Sent);
    assert_eq!(api.passwords("app-1"), after_first);
    assert_eq!(api.count("set"), 2);
    // With it (both passwords AUTH and the count is two): nothing is sent.
    let proven = [PENDING, CURRENT]
        .iter()
        .all(|p| api.logs_in("app-1", &password(p)));
    assert!(proven);
    let outcome = set_passwords(&api, &user, &dual(), Holding::AllLogIn, &ctx)
        .await
        .unwrap();
    assert_eq!(outcome, SetOutcome::AlreadySet);
    assert_eq!(api.count("set"), 2);
    // Proof for a set of one while the user holds two: not exactly the set, so it is sent.
    let single = PasswordSet::single(password(PENDING));
    let outcome = set_passwords(&api, &user, &single, Holding::AllLogIn, &ctx)
        .await
        .unwrap();
    assert_eq!(outcome, SetOutcome::Sent);
    assert_eq!(api.passwords("app-1"), [password(PENDING)]);
}

#[tokio::test(start_paused = true)]
async fn a_change_waits_for_the_user_and_for_a_change_that_starts_meanwhile() {
    let api = FakeCacheUsers::with(vec![
        FakeUser::new(Service::MemoryDb, "app", "app", &[CURRENT]).modifying_for(2),
    ]);
    api.interfere.set(true);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(60));
    let outcome = set_passwords(
        &api,
        &user_arn(Service::MemoryDb, "app"),
        &dual(),
        Holding::Unknown,
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(outcome, SetOutcome::Sent);
    // Two looks at modifying, one active, a refused change, one look at modifying, one active,
    // the change.
    assert_eq!(
        *api.calls.borrow(),
        [
            "describe:app",
            "describe:app",
            "describe:app",
            "set:app:2",
            "describe:app",
            "describe:app",
            "set:app:2"
        ]
    );
    assert_eq!(api.passwords("app"), [password(PENDING), password(CURRENT)]);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_change_is_retried_within_the_deadline() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::ElastiCache,
        "app-1",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    api.throttle.set(1); // the look
    let user = user_arn(Service::ElastiCache, "app-1");
    let described = wait_active(&api, &user, &ctx).await.unwrap();
    assert_eq!(described.status, UserStatus::Active);
    api.throttle.set(2); // the look is throttled once, then the change once
    set_passwords(&api, &user, &dual(), Holding::Unknown, &ctx)
        .await
        .unwrap();
    assert_eq!(tally.throttled(), 3);
    assert_eq!(api.passwords("app-1").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn passwords_the_services_would_refuse_are_refused_first_without_a_call() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::MemoryDb,
        "app",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    for (bad, expected) in [
        ("Sentinel-short", "shorter than the 16"),
        ("Sentinel-with-@-0123456789", "one of , \" / @"),
        ("Sentinel-with-,-0123456789", "one of , \" / @"),
        ("Sentinel-with-é-0123456789", "not printable ASCII"),
    ] {
        let set = PasswordSet::dual(password(bad), password(CURRENT));
        let e = set_passwords(
            &api,
            &user_arn(Service::MemoryDb, "app"),
            &set,
            Holding::Unknown,
            &ctx,
        )
        .await
        .unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(
            shown.contains("the pending password") && shown.contains(expected),
            "{shown}"
        );
        assert!(!shown.contains(bad) && !shown.contains(CURRENT), "{shown}");
    }
    assert_eq!(
        password_problem(&password(&"x".repeat(129))).map(|p| &p[..22]),
        Some("is longer than the 128")
    );
    assert_eq!(password_problem(&password(&"x".repeat(128))), None);
    assert_eq!(api.calls.borrow().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_user_without_password_authentication_gets_none() {
    let mut iam = FakeUser::new(Service::ElastiCache, "app-1", "app", &[]);
    iam.user.authentication = AuthType::Iam;
    let api = FakeCacheUsers::with(vec![iam]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let e = set_passwords(
        &api,
        &user_arn(Service::ElastiCache, "app-1"),
        &dual(),
        Holding::Unknown,
        &ctx,
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_type(), "ElastiCacheError");
    assert!(e.to_string().contains("authenticates by iam"), "{e}");
    assert_eq!(api.count("set"), 0);
}

#[tokio::test(start_paused = true)]
async fn errors_of_a_change_never_carry_a_password() {
    let api = FakeCacheUsers::with(vec![FakeUser::new(
        Service::ElastiCache,
        "app-1",
        "app",
        &[CURRENT],
    )]);
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let set = PasswordSet::dual(password(SENTINEL), password(CURRENT));
    // A user that vanishes between the look and the change.
    let user = user_arn(Service::ElastiCache, "app-1");
    wait_active(&api, &user, &ctx).await.unwrap();
    api.users.borrow_mut().clear();
    let e = api.set_passwords(&user, &set, &ctx).await.unwrap();
    assert_eq!(e, Change::NotFound);
    let e = set_passwords(&api, &user, &set, Holding::Unknown, &ctx)
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    let shown = format!(
        "{shown} {}",
        lambda_runtime::Diagnostic::from(e).error_message
    );
    assert!(
        !shown.contains(SENTINEL) && !shown.contains(CURRENT),
        "{shown}"
    );
    // A service message quoting a password is masked.
    assert_eq!(
        masked(
            format!("bad value {SENTINEL} for Passwords"),
            &[SENTINEL, ""]
        ),
        "bad value <redacted> for Passwords"
    );
}

// --- preflight -----------------------------------------------------------------------------

async fn preflight_of(
    user: Option<FakeUser>,
    secret: (Service, &str, &str),
    modifying_for: Option<Duration>,
) -> Preflight {
    let api = FakeCacheUsers::with(user.into_iter().collect());
    let (step, tally) = (Step::TestSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    let (service, id, username) = secret;
    let secret = CacheUserSecret::parse(
        SECRET_ID,
        Stage::Current,
        &secret_json(service, id, username, CURRENT),
        &home(),
    )
    .unwrap();
    let window = Duration::from_secs(15 * 60);
    let found = preflight(&api, &secret, Stage::Current, window, modifying_for, &ctx)
        .await
        .unwrap();
    assert_eq!(api.count("set"), 0, "the preflight writes nothing");
    found
}

fn checks(p: &Preflight) -> Vec<&'static str> {
    p.findings.iter().map(|f| f.check).collect()
}

#[tokio::test(start_paused = true)]
async fn preflight_reports_what_stands_in_the_way() {
    let ok = FakeUser::new(Service::ElastiCache, "app-1", "app", &[CURRENT, PREVIOUS]);
    let secret = (Service::ElastiCache, "app-1", "app");
    let p = preflight_of(Some(ok.clone()), secret, None).await;
    assert!(p.is_ready(), "{p:?}");
    assert_eq!(p.user.unwrap().password_count, Some(2));

    let p = preflight_of(None, secret, None).await;
    assert_eq!(checks(&p), ["user-exists"]);
    let f = &p.findings[0];
    assert_eq!(
        f.account,
        "ElastiCache user app-1 (arn:aws:elasticache:us-east-1:123456789012:user:app-1)"
    );
    assert!(
        f.missing.contains("does not exist") && f.hint.contains("user_arn"),
        "{f:?}"
    );

    let p = preflight_of(
        Some(ok.clone()),
        (Service::ElastiCache, "app-1", "other"),
        None,
    )
    .await;
    assert_eq!(checks(&p), ["username"]);

    let mut iam = ok.clone();
    iam.user.authentication = AuthType::Iam;
    iam.user.password_count = Some(0);
    assert_eq!(
        checks(&preflight_of(Some(iam), secret, None).await),
        ["authentication"]
    );

    let mut empty = ok.clone();
    empty.user.password_count = Some(0);
    assert_eq!(
        checks(&preflight_of(Some(empty), secret, None).await),
        ["password-count"]
    );

    let mut deleting = ok.clone();
    deleting.user.status = UserStatus::Deleting;
    assert_eq!(
        checks(&preflight_of(Some(deleting), secret, None).await),
        ["status"]
    );

    // Modifying: reported only when known to last longer than the window.
    let modifying = ok.clone().modifying_for(0);
    let young = Some(Duration::from_secs(5 * 60));
    let old = Some(Duration::from_secs(40 * 60));
    assert!(
        preflight_of(Some(modifying.clone()), secret, None)
            .await
            .is_ready()
    );
    assert!(
        preflight_of(Some(modifying.clone()), secret, young)
            .await
            .is_ready()
    );
    let p = preflight_of(Some(modifying), secret, old).await;
    assert_eq!(checks(&p), ["stuck-modifying"]);
    assert!(
        p.findings[0]
            .missing
            .contains("modifying for at least 40 minutes")
            && p.findings[0].missing.contains("15 minutes"),
        "{:?}",
        p.findings
    );
    let shown = format!("{p:?}");
    assert!(!shown.contains(CURRENT), "{shown}");
}

#[test]
fn each_service_has_its_own_error_type() {
    let (step, tally) = (Step::FinishSecret, CallTally::new());
    let ctx = ctx(&step, &tally, Deadline::new(None, Duration::from_secs(5)));
    for (service, error_type) in [
        (Service::ElastiCache, "ElastiCacheError"),
        (Service::MemoryDb, "MemoryDbError"),
    ] {
        let e = service.error(
            &ctx,
            "DescribeUsers",
            &user_arn(service, "app"),
            None,
            "x".into(),
        );
        assert_eq!(e.error_type(), error_type);
        assert!(
            e.to_string().starts_with(&format!(
                "secret {SECRET_ID}: {service} DescribeUsers of user arn:"
            )),
            "{e}"
        );
    }
    assert_eq!(Service::ElastiCache.engine(), "elasticache");
    assert_eq!(Service::MemoryDb.modify_operation(), "UpdateUser");
    assert_eq!(UserStatus::parse("modifying"), UserStatus::Modifying);
    assert_eq!(UserStatus::parse("").to_string(), "(none reported)");
    assert_eq!(AuthType::parse("no-password"), AuthType::NoPassword);
}

// --- the SDK clients -------------------------------------------------------------------------

/// An SDK configuration whose endpoint refuses connections (the discard port, closed here).
fn unreachable_sdk_config() -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_secretsmanager::config::{Credentials, SharedCredentialsProvider};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "tests",
        )))
        .build()
}

#[cfg(all(feature = "elasticache", feature = "memorydb"))]
#[tokio::test]
async fn each_client_is_built_on_its_first_call_and_its_calls_keep_the_deadline() {
    let users = SdkCacheUsers::new(&unreachable_sdk_config());
    assert!(!users.client_built(Service::ElastiCache) && !users.client_built(Service::MemoryDb));
    let (step, tally) = (Step::SetSecret, CallTally::new());
    // 1.6 s: the safety margin, then 0.6 s of attempts against a closed port.
    let deadline = Deadline::new(
        Some(StdInstant::now() + Duration::from_millis(1600)),
        Duration::from_secs(5),
    );
    let ctx = ctx(&step, &tally, deadline);
    let started = StdInstant::now();
    let e = users
        .describe(&user_arn(Service::MemoryDb, "app"), &ctx)
        .await
        .unwrap_err();
    assert_eq!(e.error_type(), "DeadlineExceeded", "{e}");
    assert!(
        e.to_string()
            .contains("MemoryDB DescribeUsers of arn:aws:memorydb:"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(users.client_built(Service::MemoryDb) && !users.client_built(Service::ElastiCache));
    assert!(tally.retries() > 0, "connection failures are retried");
}

#[cfg(not(all(feature = "elasticache", feature = "memorydb")))]
#[tokio::test]
async fn a_build_without_a_services_feature_says_which() {
    let users = SdkCacheUsers::new(&unreachable_sdk_config());
    let (step, tally) = (Step::SetSecret, CallTally::new());
    let ctx = ctx(&step, &tally, deadline_in(30));
    for service in [Service::ElastiCache, Service::MemoryDb] {
        if service.in_this_build() {
            continue;
        }
        let user = user_arn(service, "app");
        let e = users.describe(&user, &ctx).await.unwrap_err();
        let feature = format!("cargo feature `{}`", service.engine());
        assert!(e.to_string().contains(&feature), "{e}");
        let e = users.set_passwords(&user, &dual(), &ctx).await.unwrap_err();
        assert!(
            e.to_string().contains(&feature) && !format!("{e:?}").contains(PENDING),
            "{e}"
        );
        assert!(!users.client_built(service));
    }
}
