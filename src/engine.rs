//! Database engines and what differs between them before any connection: the `engine` names of
//! docs/protocol.md section 4, default ports, default excluded password characters, user-name
//! limits and the alternating-users clone name (5.8).
//!
//! A leaf module: it imports nothing of this crate. A new engine is a variant here (and its family's
//! arms), plus its rotator folder under `rotators/`.

use std::fmt;

/// A database engine as named by the secret's `engine` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// `postgres`
    Postgres,
    /// `aurora-postgresql`
    AuroraPostgres,
    /// `mysql`
    Mysql,
    /// `aurora-mysql`
    AuroraMysql,
    /// `mariadb`
    Mariadb,
}

/// Engines that share a wire protocol and SQL dialect, and so one rotator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// PostgreSQL and Aurora PostgreSQL.
    Postgres,
    /// MySQL, Aurora MySQL and MariaDB.
    Mysql,
}

impl Engine {
    /// Every accepted `engine` value, for error messages.
    pub(crate) const ACCEPTED: &'static str =
        "postgres, aurora-postgresql, mysql, aurora-mysql, mariadb";

    /// Parses the exact, case-sensitive `engine` value.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "postgres" => Some(Engine::Postgres),
            "aurora-postgresql" => Some(Engine::AuroraPostgres),
            "mysql" => Some(Engine::Mysql),
            "aurora-mysql" => Some(Engine::AuroraMysql),
            "mariadb" => Some(Engine::Mariadb),
            _ => None,
        }
    }

    /// The `engine` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::AuroraPostgres => "aurora-postgresql",
            Engine::Mysql => "mysql",
            Engine::AuroraMysql => "aurora-mysql",
            Engine::Mariadb => "mariadb",
        }
    }

    /// The protocol family.
    pub fn family(self) -> Family {
        match self {
            Engine::Postgres | Engine::AuroraPostgres => Family::Postgres,
            Engine::Mysql | Engine::AuroraMysql | Engine::Mariadb => Family::Mysql,
        }
    }

    /// The port used when the secret has none.
    pub(crate) fn default_port(self) -> u16 {
        match self.family() {
            Family::Postgres => 5432,
            Family::Mysql => 3306,
        }
    }

    /// The longest user name the engine accepts for a clone; `mysql_limit` is
    /// `USERNAME_CHARACTER_LIMIT`, which applies to MySQL and Aurora MySQL only.
    pub fn username_limit(self, mysql_limit: usize) -> usize {
        match self {
            Engine::Postgres | Engine::AuroraPostgres => 63,
            Engine::Mysql | Engine::AuroraMysql => mysql_limit,
            Engine::Mariadb => 80,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Family {
    /// Every family, for checks that must hold for each (a password policy is validated for all).
    pub(crate) const ALL: [Family; 2] = [Family::Postgres, Family::Mysql];

    /// The reference's `EXCLUDE_CHARACTERS` default: the characters its SQL or connection strings
    /// would have to escape.
    pub(crate) fn default_excluded_characters(self) -> &'static str {
        match self {
            Family::Postgres => ":/@\"'\\",
            Family::Mysql => "/@\"'\\",
        }
    }
}

/// Suffix of the alternate user's name.
const CLONE_SUFFIX: &str = "_clone";

/// The alternating-users partner of `username`: `_clone` appended, or stripped when present. Only
/// the lengthened name is checked against `limit`, in characters; `Err` carries the limit.
pub fn clone_name(username: &str, limit: usize) -> Result<String, usize> {
    match username.strip_suffix(CLONE_SUFFIX) {
        Some(original) if !original.is_empty() => Ok(original.to_owned()),
        _ => {
            let clone = format!("{username}{CLONE_SUFFIX}");
            if clone.chars().count() > limit {
                Err(limit)
            } else {
                Ok(clone)
            }
        }
    }
}

/// Of a user and its clone, the original (the name without `_clone`).
pub(crate) fn original_name<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.len() <= b.len() { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_names() {
        assert_eq!(clone_name("app", 63), Ok("app_clone".to_owned()));
        assert_eq!(clone_name("app_clone", 63), Ok("app".to_owned()));
        assert_eq!(clone_name("_clone", 63), Ok("_clone_clone".to_owned()));
        assert_eq!(
            clone_name("abcdefghij", 16),
            Ok("abcdefghij_clone".to_owned())
        );
        assert_eq!(clone_name("abcdefghijk", 16), Err(16));
        assert_eq!(clone_name(&"x".repeat(57), 63).map(|n| n.len()), Ok(63));
        assert_eq!(clone_name(&"x".repeat(58), 63), Err(63));
        assert_eq!(clone_name(&"x".repeat(80), 16), Err(16));
        assert_eq!(Engine::Mariadb.username_limit(16), 80);
        assert_eq!(Engine::AuroraMysql.username_limit(32), 32);
        assert_eq!(original_name("app_clone", "app"), "app");
    }

    #[test]
    fn engines() {
        for engine in [
            Engine::Postgres,
            Engine::AuroraPostgres,
            Engine::Mysql,
            Engine::AuroraMysql,
            Engine::Mariadb,
        ] {
            assert_eq!(Engine::parse(engine.as_str()), Some(engine));
            assert!(Engine::ACCEPTED.contains(engine.as_str()));
            assert!(Family::ALL.contains(&engine.family()));
        }
        assert_eq!(Engine::parse("Postgres"), None);
        assert_eq!(Engine::AuroraPostgres.default_port(), 5432);
        assert_eq!(Engine::Mariadb.default_port(), 3306);
    }
}
