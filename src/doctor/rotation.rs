//! The checks that need nothing but `DescribeSecret`: rotation turned off, rotation overdue.

use std::time::{Duration, SystemTime};

use super::report::{Code, Problem};
use super::when::{age, span, utc};
use crate::secrets::{RotationSchedule, SecretInfo};

/// How late a rotation may be before it is overdue: the service starts a scheduled rotation
/// within its window (at most a day), and takes a while to retry a failed one.
const GRACE: Duration = Duration::from_secs(86_400);

/// `rotation-disabled` and `overdue`, as `info` shows them at `now`.
pub(super) fn problems(info: &SecretInfo, now: SystemTime) -> Vec<Problem> {
    let mut problems = Vec::new();
    match info.description.rotation_enabled {
        Some(false) if info.rotation_configured() => problems.push(Problem::new(
            Code::RotationDisabled,
            format!(
                "rotation is configured (function {}) but turned off, so nothing rotates this \
                 secret; `aws secretsmanager rotate-secret --secret-id {}` turns it on again \
                 and rotates at once",
                info.rotation_function.as_deref().unwrap_or("?"),
                info.name
            ),
        )),
        Some(true) => problems.extend(overdue(info, now)),
        _ => {}
    }
    problems
}

/// The rotation interval a schedule states: `AutomaticallyAfterDays`, or `rate(N days)` and
/// `rate(N hours)`. A `cron(…)` expression states none here; `NextRotationDate` still tells.
pub(super) fn interval(schedule: &RotationSchedule) -> Option<Duration> {
    if let Some(days) = schedule.every_days.and_then(|d| u64::try_from(d).ok()) {
        return Some(Duration::from_secs(days * 86_400));
    }
    let rate = schedule
        .expression
        .as_deref()?
        .trim()
        .strip_prefix("rate(")?
        .strip_suffix(')')?;
    let (count, unit) = rate.trim().split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let unit_seconds = match unit.trim() {
        "day" | "days" => 86_400,
        "hour" | "hours" => 3_600,
        _ => return None,
    };
    Some(Duration::from_secs(count * unit_seconds))
}

/// `overdue`: the next rotation more than [`GRACE`] in the past, or the last one older than the
/// schedule's interval plus [`GRACE`].
fn overdue(info: &SecretInfo, now: SystemTime) -> Option<Problem> {
    let mut facts = Vec::new();
    if let Some(next) = info.next_rotation.filter(|next| *next + GRACE < now) {
        facts.push(format!(
            "the next rotation was due {}, {} ago",
            utc(next),
            age(next, now)
        ));
    }
    if let (Some(last), Some(every)) = (info.last_rotated, interval(&info.schedule)) {
        if last + every + GRACE < now {
            facts.push(format!(
                "the last rotation was {}, {} ago, and the schedule asks for one every {}",
                utc(last),
                age(last, now),
                span(every)
            ));
        }
    }
    if facts.is_empty() {
        return None;
    }
    Some(Problem::new(
        Code::Overdue,
        format!(
            "{}: rotations are failing or not starting; the function's log and the \
             RotationFailed events say why (docs/deployment.md, \"Reading a failed rotation\")",
            facts.join("; ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::secrets::SecretDescription;

    const DAY: u64 = 86_400;

    fn at(days: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(20_000 * DAY + days * DAY)
    }

    fn info(enabled: Option<bool>) -> SecretInfo {
        SecretInfo {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf".into(),
            name: "app".into(),
            rotation_function: Some("arn:aws:lambda:us-east-1:123456789012:function:r".into()),
            description: SecretDescription {
                rotation_enabled: enabled,
                ..SecretDescription::default()
            },
            ..SecretInfo::default()
        }
    }

    fn codes(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.code.as_str()).collect()
    }

    #[test]
    fn turned_off_rotation_is_reported_only_when_configured() {
        let problems = problems(&info(Some(false)), at(0));
        assert_eq!(codes(&problems), ["rotation-disabled"]);
        assert!(problems[0].detail.contains("function:r"), "{problems:?}");
        let never_configured = SecretInfo {
            rotation_function: None,
            ..info(Some(false))
        };
        assert!(super::problems(&never_configured, at(0)).is_empty());
        // A missing RotationEnabled says nothing.
        assert!(super::problems(&info(None), at(0)).is_empty());
    }

    #[test]
    fn overdue_by_next_date_or_by_last_rotation() {
        let mut secret = info(Some(true));
        secret.next_rotation = Some(at(10));
        assert!(problems(&secret, at(10)).is_empty());
        assert!(problems(&secret, at(11)).is_empty(), "within a day's grace");
        let late = problems(&secret, at(13));
        assert_eq!(codes(&late), ["overdue"]);
        assert!(late[0].detail.contains("3 days ago"), "{late:?}");

        let mut secret = info(Some(true));
        secret.schedule.every_days = Some(30);
        secret.last_rotated = Some(at(0));
        assert!(problems(&secret, at(31)).is_empty());
        let late = problems(&secret, at(40));
        assert_eq!(codes(&late), ["overdue"]);
        assert!(
            late[0].detail.contains("40 days ago") && late[0].detail.contains("every 30 days"),
            "{late:?}"
        );
        // Turned off: never overdue, since nothing is expected to rotate it.
        secret.description.rotation_enabled = Some(false);
        assert_eq!(codes(&problems(&secret, at(400))), ["rotation-disabled"]);
    }

    #[test]
    fn schedule_intervals() {
        let schedule = |days: Option<i64>, expression: Option<&str>| RotationSchedule {
            every_days: days,
            expression: expression.map(str::to_owned),
            window: None,
        };
        let day = Duration::from_secs(DAY);
        assert_eq!(interval(&schedule(Some(7), None)), Some(day * 7));
        assert_eq!(
            interval(&schedule(None, Some("rate(10 days)"))),
            Some(day * 10)
        );
        assert_eq!(interval(&schedule(None, Some("rate(1 day)"))), Some(day));
        assert_eq!(
            interval(&schedule(None, Some("rate(4 hours)"))),
            Some(Duration::from_secs(4 * 3_600))
        );
        assert_eq!(
            interval(&schedule(None, Some("cron(0 16 1,15 * ? *)"))),
            None
        );
        assert_eq!(interval(&schedule(None, None)), None);
    }
}
