//! Setting a user's passwords, idempotently.
//!
//! # Knowing that nothing is left to do
//!
//! Neither service ever returns a password: `DescribeUsers` reports a count. A count of two
//! cannot tell `[pending, current]` from `[current, previous]`, the state before setSecret. So
//! the control plane alone cannot prove that a change already happened, and [`set_passwords`]
//! decides on two grounds:
//!
//! - **the data plane, when the caller can reach it**: `AUTH` with pending (and, for dual
//!   password, with current) succeeding while the API reports exactly as many passwords as the
//!   set holds means the user holds exactly the set ([`Holding::AllLogIn`]); then nothing is sent.
//! - **otherwise, sending the same list again is harmless**: `ModifyUser` and `UpdateUser`
//!   replace the user's password list with the one given, whatever it was, so a repeat ends in the
//!   same state as the first call (the list is fixed by the rotation's token: pending and current
//!   do not change between retries of one rotation). Connections already open stay open through a
//!   password change (both services document this), and the previous password keeps working until
//!   the list drops it. The cost of a repeat is one more `modifying` period, which the next step
//!   waits out.
//!
//! The change is only sent to an `active` user: the services refuse a `modifying` one
//! (`InvalidUserState`). Between the status check and the call another change may start; the
//! refusal then sends [`set_passwords`] back to waiting, within the same deadline.

use std::fmt;

use tracing::info;

use super::{AuthType, CacheUserApi, Change, UserArn, WaitPolicy, wait_active_with};
use crate::credentials::Password;
use crate::deadline::StepContext;
use crate::error::Error;

/// The passwords a user is to hold, newest first: `[pending, current]` (dual password) or
/// `[pending]` (single user). `Debug` shows [`Password`]'s redaction only.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordSet {
    pending: Password,
    current: Option<Password>,
}

impl fmt::Debug for PasswordSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordSet")
            .field("pending", &self.pending)
            .field("current", &self.current)
            .finish()
    }
}

impl PasswordSet {
    /// `[pending, current]`: the new password beside the one clients use now. When the two are
    /// the same (a configuration test stages a copy of current), the set is that one password
    /// once: the services take a list of distinct passwords.
    pub fn dual(pending: Password, current: Password) -> Self {
        let current = (current != pending).then_some(current);
        PasswordSet { pending, current }
    }

    /// `[pending]`: the new password alone; the one clients use now stops working once the
    /// change reaches the nodes.
    pub fn single(pending: Password) -> Self {
        PasswordSet {
            pending,
            current: None,
        }
    }

    /// The new password.
    pub fn pending(&self) -> &Password {
        &self.pending
    }

    /// The password kept beside it, if any.
    pub fn current(&self) -> Option<&Password> {
        self.current.as_ref()
    }

    /// How many passwords the set holds: 1 or 2.
    pub fn len(&self) -> usize {
        1 + usize::from(self.current.is_some())
    }

    /// Never empty: pending is always in it.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The passwords, newest first, in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = &Password> {
        std::iter::once(&self.pending).chain(self.current.as_ref())
    }

    /// The passwords as plain strings, for the SDK request and the error mask. Never log them.
    #[cfg(any(feature = "elasticache", feature = "memorydb", test))]
    pub(crate) fn exposed(&self) -> Vec<&str> {
        self.iter().map(Password::expose).collect()
    }
}

/// Why `password` would be refused by both services, if it would: 16 to 128 printable ASCII
/// characters, none of `,` `"` `/` `@` (the ElastiCache and MemoryDB user guides' password
/// constraints). `None` when it passes. Never mentions the password itself.
pub fn password_problem(password: &Password) -> Option<&'static str> {
    let p = password.expose();
    let length = p.chars().count();
    if length < 16 {
        Some("is shorter than the 16 characters ElastiCache and MemoryDB require")
    } else if length > 128 {
        Some("is longer than the 128 characters ElastiCache and MemoryDB accept")
    } else if !p.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        Some("holds a character that is not printable ASCII, which ElastiCache and MemoryDB refuse")
    } else if p.contains([',', '"', '/', '@']) {
        Some("holds one of , \" / @, which ElastiCache and MemoryDB refuse")
    } else {
        None
    }
}

/// What the caller knows of the passwords the user holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// The data plane has shown that every password of the set logs in (`AUTH`). With the count
    /// the API reports equal to the set's length, the user holds exactly the set.
    AllLogIn,
    /// Not known (no endpoint to try, or a password of the set did not log in): the set is sent.
    Unknown,
}

/// What [`set_passwords`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOutcome {
    /// The user already held exactly the set: nothing was sent.
    AlreadySet,
    /// The set was sent and accepted; the user is `modifying` until it reaches every node
    /// (testSecret waits for `active` again).
    Sent,
}

/// Makes `user`'s passwords exactly `passwords`, as [`set_passwords`] does, pacing its waits with
/// `pace`.
pub async fn set_passwords_with<A: CacheUserApi>(
    api: &A,
    user: &UserArn,
    passwords: &PasswordSet,
    holding: Holding,
    pace: &WaitPolicy,
    ctx: &StepContext<'_>,
) -> Result<SetOutcome, Error> {
    let service = user.service();
    let operation = service.modify_operation();
    for password in passwords.iter() {
        if let Some(problem) = password_problem(password) {
            let which = if password == passwords.pending() {
                "the pending password"
            } else {
                "the current password"
            };
            return Err(service.error(ctx, operation, user, None, format!("{which} {problem}")));
        }
    }
    loop {
        let described = wait_active_with(api, user, pace, ctx).await?;
        if described.authentication != AuthType::Password {
            return Err(service.error(
                ctx,
                operation,
                user,
                None,
                format!(
                    "the user authenticates by {}, not by password; refusing to give it passwords",
                    described.authentication
                ),
            ));
        }
        let count = described.password_count.map(|c| c as usize);
        if holding == Holding::AllLogIn && count == Some(passwords.len()) {
            info!(
                service = service.name(),
                user = %user,
                passwords = passwords.len(),
                "the user already holds exactly the new passwords; nothing to change"
            );
            return Ok(SetOutcome::AlreadySet);
        }
        match api.set_passwords(user, passwords, ctx).await? {
            Change::Accepted => {
                info!(
                    service = service.name(),
                    user = %user,
                    passwords = passwords.len(),
                    "passwords set; the user is modifying"
                );
                return Ok(SetOutcome::Sent);
            }
            // Another change started after the user was seen active: wait for it too.
            Change::NotReady => continue,
            Change::NotFound => return Err(service.user_not_found(ctx, operation, user)),
        }
    }
}

/// Makes `user`'s passwords exactly `passwords` (`[pending, current]` or `[pending]`; the access
/// string untouched): waits for the user to be `active` (within `ctx`'s deadline), then sends the
/// set, unless `holding` and the reported count show it is already in place (see the module
/// documentation for why a repeat is otherwise safe). Passwords the services would refuse are
/// refused first, naming which one and why, never the value. A user that does not authenticate by
/// password is refused.
pub async fn set_passwords<A: CacheUserApi>(
    api: &A,
    user: &UserArn,
    passwords: &PasswordSet,
    holding: Holding,
    ctx: &StepContext<'_>,
) -> Result<SetOutcome, Error> {
    set_passwords_with(api, user, passwords, holding, &WaitPolicy::default(), ctx).await
}
