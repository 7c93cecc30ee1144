//! The retry loop on tokio's paused clock: budgets, delays and counts are exact.

use std::cell::{Cell, RefCell};

use super::*;

const MIN_ATTEMPT: Duration = Duration::from_millis(200);

fn failure(kind: Kind, label: &str) -> AttemptError {
    AttemptError {
        kind,
        code: Some(label.to_owned()),
        label: label.to_owned(),
        detail: format!("{label}: injected"),
    }
}

/// A jitter that records each ceiling and returns `pick(ceiling)`.
fn recording(
    ceilings: &RefCell<Vec<Duration>>,
    pick: fn(Duration) -> Duration,
) -> impl FnMut(Duration) -> Duration + '_ {
    move |ceiling| {
        ceilings.borrow_mut().push(ceiling);
        pick(ceiling)
    }
}

#[test]
fn ceilings_double_from_the_base_up_to_the_cap() {
    let policy = RetryPolicy::default();
    let ms = |n| policy.ceiling(n).as_millis();
    assert_eq!(
        (1..=8).map(ms).collect::<Vec<_>>(),
        [50, 100, 200, 400, 800, 1600, 2000, 2000]
    );
    assert_eq!(policy.ceiling(u32::MAX), policy.cap, "no overflow");
}

#[test]
fn full_jitter_stays_below_its_ceiling() {
    let ceiling = Duration::from_millis(800);
    let draws: Vec<Duration> = (0..1000).map(|_| full_jitter(ceiling)).collect();
    assert!(draws.iter().all(|d| *d < ceiling));
    assert!(draws.iter().any(|d| *d < ceiling / 4) && draws.iter().any(|d| *d > ceiling * 3 / 4));
    assert_eq!(full_jitter(Duration::ZERO), Duration::ZERO);
}

#[test]
fn throttling_and_server_errors_are_retried_and_the_rest_is_not() {
    for (code, status, kind) in [
        (Some("ThrottlingException"), Some(400), Kind::Throttled),
        (Some("TooManyRequestsException"), Some(400), Kind::Throttled),
        (None, Some(429), Kind::Throttled),
        (
            Some("TransactionInProgressException"),
            Some(400),
            Kind::Throttled,
        ),
        (Some("PriorRequestNotComplete"), Some(400), Kind::Transient),
        (Some("InternalServiceError"), Some(500), Kind::Transient),
        (None, Some(503), Kind::Transient),
        (Some("SomethingNew"), Some(502), Kind::Transient),
        (Some("ResourceNotFoundException"), Some(400), Kind::Fatal),
        (Some("AccessDeniedException"), Some(400), Kind::Fatal),
        (Some("InvalidParameterException"), Some(400), Kind::Fatal),
        // A quota on the secret itself (too many versions), not a rate: retrying cannot help.
        (Some("LimitExceededException"), Some(400), Kind::Fatal),
        (None, Some(404), Kind::Fatal),
    ] {
        assert_eq!(classify(code, status), kind, "{code:?} {status:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retries_fill_the_budget_exactly_and_no_more() {
    let policy = RetryPolicy::default();
    let budget = Duration::from_secs(10);
    let tally = CallTally::default();
    let ceilings = RefCell::new(Vec::new());
    let starts = RefCell::new(Vec::new());
    let started = Instant::now();
    let result: Result<(), Failure> = with_retries(
        "Secrets Manager",
        "PutSecretValue",
        &policy,
        (budget, MIN_ATTEMPT),
        &mut recording(&ceilings, |c| c),
        &tally,
        || async {
            starts.borrow_mut().push(started.elapsed());
            tokio::time::sleep(Duration::from_millis(30)).await;
            Err(failure(Kind::Throttled, "ThrottlingException"))
        },
    )
    .await;
    let elapsed = started.elapsed();
    let Err(Failure::OutOfTime { attempts, last }) = result else {
        panic!("{result:?}")
    };
    let starts = starts.into_inner();
    assert_eq!(attempts as usize, starts.len());
    assert_eq!(last.unwrap().label, "ThrottlingException");
    assert!(elapsed <= budget, "{elapsed:?}");
    // Every attempt started with at least the minimum left, and the budget was used up: after
    // the last attempt less than the minimum remained.
    assert!(
        starts.iter().all(|s| budget - *s >= MIN_ATTEMPT),
        "{starts:?}"
    );
    assert!(budget - elapsed < MIN_ATTEMPT, "{elapsed:?}");
    // With the jitter at its ceiling, the delays follow the policy exactly until the last one,
    // cut short so that one more attempt fits.
    let ceilings = ceilings.into_inner();
    let expected: Vec<Duration> = (1..=ceilings.len() as u32)
        .map(|n| policy.ceiling(n))
        .collect();
    assert_eq!(ceilings, expected);
    for (n, pair) in starts.windows(2).enumerate() {
        let gap = pair[1] - pair[0] - Duration::from_millis(30);
        assert!(gap <= ceilings[n], "retry {n}: {gap:?}");
    }
    assert_eq!(tally.retries() as usize, starts.len() - 1);
    assert_eq!(tally.throttled() as usize, starts.len());
}

#[tokio::test(start_paused = true)]
async fn a_silent_endpoint_costs_the_budget_and_no_more() {
    let policy = RetryPolicy::default();
    let tally = CallTally::default();
    let attempts = Cell::new(0);
    let started = Instant::now();
    // Less than one attempt timeout: the only attempt gets what is left.
    let result: Result<(), Failure> = with_retries(
        "Secrets Manager",
        "DescribeSecret",
        &policy,
        (Duration::from_millis(4300), MIN_ATTEMPT),
        &mut |c| c,
        &tally,
        || {
            attempts.set(attempts.get() + 1);
            std::future::pending()
        },
    )
    .await;
    assert_eq!(started.elapsed(), Duration::from_millis(4300));
    let Err(Failure::OutOfTime {
        attempts: 1,
        last: Some(last),
    }) = result
    else {
        panic!("{result:?}")
    };
    assert_eq!(
        (last.kind, last.label.as_str()),
        (Kind::Transient, "timeout")
    );
    assert_eq!(attempts.get(), 1);

    // More than one: each attempt is cut at the attempt timeout, then retried.
    let started = Instant::now();
    let result: Result<(), Failure> = with_retries(
        "Secrets Manager",
        "DescribeSecret",
        &policy,
        (Duration::from_secs(12), MIN_ATTEMPT),
        &mut |_| Duration::ZERO,
        &tally,
        std::future::pending,
    )
    .await;
    assert!(
        matches!(result, Err(Failure::OutOfTime { attempts: 3, .. })),
        "{result:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(12));
}

#[tokio::test(start_paused = true)]
async fn a_fatal_answer_fails_at_once() {
    let tally = CallTally::default();
    let attempts = Cell::new(0);
    let started = Instant::now();
    let result: Result<(), Failure> = with_retries(
        "Secrets Manager",
        "GetSecretValue AWSCURRENT",
        &RetryPolicy::default(),
        (Duration::from_secs(30), MIN_ATTEMPT),
        &mut |c| c,
        &tally,
        || {
            attempts.set(attempts.get() + 1);
            async { Err(failure(Kind::Fatal, "AccessDeniedException")) }
        },
    )
    .await;
    assert!(
        matches!(&result, Err(Failure::Fatal(error)) if error.label == "AccessDeniedException"),
        "{result:?}"
    );
    assert_eq!(attempts.get(), 1);
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!((tally.retries(), tally.throttled()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn transient_failures_then_success() {
    let tally = CallTally::default();
    let script = RefCell::new(vec![
        Err(failure(Kind::Transient, "InternalServiceError")),
        Err(failure(Kind::Throttled, "ThrottlingException")),
        Err(failure(Kind::Throttled, "ThrottlingException")),
        Ok(7),
    ]);
    let ceilings = RefCell::new(Vec::new());
    let started = Instant::now();
    let result = with_retries(
        "Secrets Manager",
        "UpdateSecretVersionStage",
        &RetryPolicy::default(),
        (Duration::from_secs(30), MIN_ATTEMPT),
        &mut recording(&ceilings, |c| c / 2),
        &tally,
        || {
            let next = script.borrow_mut().remove(0);
            async move { next }
        },
    )
    .await;
    assert_eq!(result.unwrap(), 7);
    assert_eq!(
        ceilings.into_inner(),
        [50, 100, 200].map(Duration::from_millis)
    );
    // The delays were half of each ceiling: 25 + 50 + 100 ms.
    assert_eq!(started.elapsed(), Duration::from_millis(175));
    assert_eq!((tally.retries(), tally.throttled()), (3, 2));
}

#[tokio::test(start_paused = true)]
async fn no_time_for_one_attempt_makes_none() {
    let tally = CallTally::default();
    let result: Result<(), Failure> = with_retries(
        "Secrets Manager",
        "DescribeSecret",
        &RetryPolicy::default(),
        (MIN_ATTEMPT - Duration::from_millis(1), MIN_ATTEMPT),
        &mut |c| c,
        &tally,
        || async { panic!("no attempt may start") },
    )
    .await;
    assert!(matches!(
        result,
        Err(Failure::OutOfTime {
            attempts: 0,
            last: None
        })
    ));
}
