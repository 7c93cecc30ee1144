//! User ARNs, and the account and Region the function acts in.
//!
//! - ElastiCache: `arn:<partition>:elasticache:<region>:<account>:user:<user-id>`
//! - MemoryDB: `arn:<partition>:memorydb:<region>:<account>:user/<user-name>`
//!
//! (the resource types `user` of the IAM service authorization reference). The last part is
//! what `DescribeUsers` filters on: ElastiCache's `UserId`, MemoryDB's `UserName`. Both services
//! name users with a letter followed by letters, digits and hyphens, so anything else (a second
//! `:` or `/`, a wildcard, a space) is refused before any call.

use std::fmt;

use super::Service;

/// The partition, account and Region the function runs in: a secret's user must be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: String,
    /// The 12-digit account id.
    pub account: String,
    /// The Region, e.g. `eu-west-1`.
    pub region: String,
}

impl Home {
    /// The function's home from its own ARN (the Lambda context's `invoked_function_arn`,
    /// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`), so that no
    /// STS call is needed. `None` when `arn` is not a Lambda function ARN.
    pub fn from_function_arn(arn: &str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (Some("arn"), Some(partition), Some("lambda"), Some(region), Some(account)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        let home = Home {
            partition: partition.to_owned(),
            account: account.to_owned(),
            region: region.to_owned(),
        };
        (parts.next() == Some("function") && parts.next().is_some_and(|n| !n.is_empty()))
            .then_some(home)
            .filter(Home::well_formed)
    }

    fn well_formed(&self) -> bool {
        partition_like(&self.partition) && region_like(&self.region) && account_like(&self.account)
    }
}

impl fmt::Display for Home {
    /// `account 123456789012, Region eu-west-1 (partition aws)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "account {}, Region {} (partition {})",
            self.account, self.region, self.partition
        )
    }
}

/// The ARN of an ElastiCache or MemoryDB user, well formed (in some account and Region: see
/// [`UserArn::check_home`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserArn {
    arn: String,
    service: Service,
    partition: String,
    region: String,
    account: String,
    id: String,
}

/// Why a string is not a user ARN, in words for an error naming the field and the ARN.
pub(crate) type ArnProblem = &'static str;

impl UserArn {
    /// Parses a user ARN of either service.
    pub fn parse(arn: &str) -> Result<Self, ArnProblem> {
        let mut parts = arn.splitn(6, ':');
        let (Some("arn"), Some(partition), Some(service), Some(region), Some(account), Some(rest)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err("is not an ARN (arn:<partition>:<service>:<region>:<account>:<resource>)");
        };
        let (service, id) = match service {
            "elasticache" => (
                Service::ElastiCache,
                rest.strip_prefix("user:")
                    .ok_or("is not an ElastiCache user ARN (…:user:<user-id>)")?,
            ),
            "memorydb" => (
                Service::MemoryDb,
                rest.strip_prefix("user/")
                    .ok_or("is not a MemoryDB user ARN (…:user/<user-name>)")?,
            ),
            _ => return Err("names neither an ElastiCache nor a MemoryDB user"),
        };
        if !partition_like(partition) {
            return Err("has no valid partition");
        }
        if !region_like(region) {
            return Err("has no valid Region");
        }
        if !account_like(account) {
            return Err("has no valid account id (12 digits)");
        }
        if !user_id_like(id) {
            return Err("ends with no valid user (a letter, then letters, digits and hyphens)");
        }
        Ok(UserArn {
            arn: arn.to_owned(),
            service,
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The ARN as given.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The service that manages the user.
    pub fn service(&self) -> Service {
        self.service
    }

    /// What `DescribeUsers` filters on: ElastiCache's `UserId`, MemoryDB's `UserName`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The Region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// `Err` (in words) unless the user is in `home`'s partition, account and Region: no secret
    /// may steer the function to another account's user, nor to another Region, whose API the
    /// function's clients do not call.
    pub fn check_home(&self, home: &Home) -> Result<(), String> {
        if self.partition == home.partition
            && self.account == home.account
            && self.region == home.region
        {
            return Ok(());
        }
        Err(format!(
            "names a user in account {}, Region {} (partition {}); this function rotates users of \
             its own {} only",
            self.account, self.region, self.partition, home
        ))
    }
}

impl fmt::Display for UserArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

fn partition_like(s: &str) -> bool {
    s.starts_with("aws") && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

fn region_like(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn account_like(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// ElastiCache `UserId` and MemoryDB `UserName`: `[a-zA-Z][a-zA-Z0-9\-]*`.
fn user_id_like(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
