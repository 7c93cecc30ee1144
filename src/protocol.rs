//! The rotation protocol's vocabulary: its steps, its staging labels and its strategies.
//!
//! A leaf module: it imports nothing of this crate, so every other module may use it (docs/protocol.md
//! sections 1, 3 and 5.9).

use std::fmt;

/// One of the four rotation steps, or an unrecognised name kept for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `createSecret`
    CreateSecret,
    /// `setSecret`
    SetSecret,
    /// `testSecret`
    TestSecret,
    /// `finishSecret`
    FinishSecret,
    /// Not a rotation step: the doctor's audit of a secret, which acts in the same context.
    Audit,
    /// Anything else (`create_secret`, `CreateSecret`, …). The guard may still succeed for it when the
    /// token is already current, as the reference does; dispatch rejects it.
    Other(String),
}

impl Step {
    /// Parses an exact, case-sensitive step name.
    pub fn parse(name: &str) -> Self {
        match name {
            "createSecret" => Step::CreateSecret,
            "setSecret" => Step::SetSecret,
            "testSecret" => Step::TestSecret,
            "finishSecret" => Step::FinishSecret,
            other => Step::Other(other.to_owned()),
        }
    }

    /// The step's protocol name.
    pub fn as_str(&self) -> &str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
            Step::Audit => "audit",
            Step::Other(name) => name,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A staging label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `AWSCURRENT`: the credential in use.
    Current,
    /// `AWSPENDING`: the credential being rotated in.
    Pending,
    /// `AWSPREVIOUS`: the credential rotated out last time.
    Previous,
}

impl Stage {
    /// The label as Secrets Manager spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Current => "AWSCURRENT",
            Stage::Pending => "AWSPENDING",
            Stage::Previous => "AWSPREVIOUS",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How credentials are rotated (docs/protocol.md 5.9): `ROTATION_STRATEGY`, overridden per secret
/// by its `rotation_strategy` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `single-user`: the user changes its own password.
    SingleUser,
    /// `alternating-users`: a superuser alternates the password between the user and its `_clone`.
    AlternatingUsers,
    /// `dual-password`: one user with two passwords, the new one added beside the current one
    /// (docs/protocol.md 5.13).
    DualPassword,
}

impl Strategy {
    /// Accepted spellings, for error messages.
    pub const ACCEPTED: &'static str = "single-user, alternating-users, dual-password";

    /// Parses an exact strategy name.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "single-user" => Some(Strategy::SingleUser),
            "alternating-users" => Some(Strategy::AlternatingUsers),
            "dual-password" => Some(Strategy::DualPassword),
            _ => None,
        }
    }

    /// The strategy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SingleUser => "single-user",
            Strategy::AlternatingUsers => "alternating-users",
            Strategy::DualPassword => "dual-password",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for step in [
            Step::CreateSecret,
            Step::SetSecret,
            Step::TestSecret,
            Step::FinishSecret,
        ] {
            assert_eq!(Step::parse(step.as_str()), step);
        }
        assert_eq!(
            Step::parse("CreateSecret"),
            Step::Other("CreateSecret".into())
        );
        for strategy in [
            Strategy::SingleUser,
            Strategy::AlternatingUsers,
            Strategy::DualPassword,
        ] {
            assert_eq!(Strategy::parse(strategy.as_str()), Some(strategy));
            assert!(Strategy::ACCEPTED.contains(strategy.as_str()));
        }
        assert_eq!(Strategy::parse("Single-User"), None);
        assert_eq!(Stage::Pending.to_string(), "AWSPENDING");
    }
}
