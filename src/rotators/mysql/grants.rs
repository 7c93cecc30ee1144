//! `SHOW GRANTS` lines rewritten for another account (docs/protocol.md 5.8). Grant text is never
//! logged.

use super::lexer::{find_top_level, tokenize};

/// One line of `SHOW GRANTS`, rewritten for another account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GrantLine {
    /// The statement to run for the target account. Contains grant text: never log it.
    Replay(String),
    /// `GRANT USAGE ON *.*` and nothing else: implied by the account's existence.
    Usage,
    /// `GRANT PROXY`: not replayed, since it needs the master to hold `PROXY … WITH GRANT OPTION`
    /// on the proxied account, which RDS masters do not.
    Proxy,
    /// Neither `GRANT`, `REVOKE` (MySQL partial revokes) nor `SET DEFAULT ROLE` (MariaDB).
    Unknown,
}

/// Rewrites one `SHOW GRANTS FOR <from>` line for the account `to_sql` (already quoted):
///
/// - the grantee, exactly as the server printed it (`` `u`@`h` `` or `'u'@'h'`), becomes `to_sql`;
///   it must decode to `from_user`@`from_host`, else the line is refused;
/// - `IDENTIFIED BY PASSWORD '<hash>'` (and any other `IDENTIFIED …` clause) is stripped, as is
///   `REQUIRE …`, which MariaDB prints on the `USAGE` line and which is copied separately;
/// - `WITH GRANT OPTION`, `WITH ADMIN OPTION` and resource limits are kept, and everything before
///   the grantee (privileges, `` `db%`.* ``) is kept verbatim.
///
/// `Err` names what could not be understood, never the line itself.
pub(super) fn rewrite_grant(
    line: &str,
    from_user: &str,
    from_host: &str,
    to_sql: &str,
) -> Result<GrantLine, &'static str> {
    let tokens = tokenize(line).ok_or("a grant of the current account has an unclosed quote")?;
    let word = |i: usize, w: &str| tokens.get(i).is_some_and(|t| t.is_word(w));
    let keyword = if word(0, "GRANT") {
        if word(1, "PROXY") {
            return Ok(GrantLine::Proxy);
        }
        "TO"
    } else if word(0, "REVOKE") {
        "FROM"
    } else if word(0, "SET") && word(1, "DEFAULT") && word(2, "ROLE") {
        "FOR"
    } else {
        return Ok(GrantLine::Unknown);
    };
    let at = find_top_level(&tokens, 1, keyword)
        .ok_or("a grant of the current account names no grantee")?;
    let (Some(user), Some(sign), Some(host)) =
        (tokens.get(at + 1), tokens.get(at + 2), tokens.get(at + 3))
    else {
        return Err("a grant of the current account names no grantee");
    };
    let is_current = sign.is_punct('@')
        && user.name() == Some(from_user)
        && host
            .name()
            .is_some_and(|h| h.eq_ignore_ascii_case(from_host));
    if !is_current {
        return Err("a grant of the current account names another grantee");
    }

    // The tail after the grantee: drop IDENTIFIED and REQUIRE clauses, keep WITH … verbatim.
    let mut kept = None;
    let mut i = at + 4;
    while let Some(token) = tokens.get(i) {
        if token.is_word("IDENTIFIED") {
            i += 1;
            // `IDENTIFIED WITH <plugin> [AS '<hash>']` (MySQL 5.7): this WITH is not a tail WITH.
            if word(i, "WITH") {
                i += 1;
            }
            while i < tokens.len() && !word(i, "REQUIRE") && !word(i, "WITH") {
                i += 1;
            }
        } else if token.is_word("REQUIRE") {
            i += 1;
            while i < tokens.len() && !word(i, "WITH") {
                i += 1;
            }
        } else if token.is_word("WITH") {
            kept = Some(token.span.start);
            break;
        } else {
            return Err("a grant of the current account has an unrecognised clause");
        }
    }

    if keyword == "TO" && word(1, "USAGE") && word(2, "ON") && kept.is_none() {
        return Ok(GrantLine::Usage);
    }
    let mut out = String::with_capacity(line.len() + to_sql.len());
    out.push_str(&line[..user.span.start]);
    out.push_str(to_sql);
    if let Some(start) = kept {
        out.push(' ');
        out.push_str(line[start..].trim_end());
    }
    Ok(GrantLine::Replay(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotators::mysql::quote::account_sql;

    fn rewrite(line: &str, user: &str, host: &str, to: &str) -> Result<GrantLine, &'static str> {
        rewrite_grant(line, user, host, &account_sql(to, host))
    }

    fn replay(s: &str) -> Result<GrantLine, &'static str> {
        Ok(GrantLine::Replay(s.to_owned()))
    }

    #[test]
    fn grants_get_the_new_grantee() {
        // MariaDB 10.4+ and MySQL 8 print backtick identifiers.
        assert_eq!(
            rewrite(
                "GRANT SELECT, INSERT ON `db%x`.* TO `app`@`%` WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT, INSERT ON `db%x`.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
        assert_eq!(
            rewrite(
                "GRANT SELECT (`User`, `Host`) ON `mysql`.`user` TO `app`@`10.0.%`",
                "app",
                "10.0.%",
                "app_clone"
            ),
            replay("GRANT SELECT (`User`, `Host`) ON `mysql`.`user` TO `app_clone`@`10.0.%`")
        );
        // MySQL 5.7 and older MariaDB print string literals.
        assert_eq!(
            rewrite(
                "GRANT ALL PRIVILEGES ON `db`.* TO 'app'@'%'",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT ALL PRIVILEGES ON `db`.* TO `app_clone`@`%`")
        );
        // Roles (MySQL 8, MariaDB) and MariaDB's default role.
        assert_eq!(
            rewrite(
                "GRANT `reader`@`%`,`writer`@`%` TO `app`@`%` WITH ADMIN OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT `reader`@`%`,`writer`@`%` TO `app_clone`@`%` WITH ADMIN OPTION")
        );
        assert_eq!(
            rewrite(
                "SET DEFAULT ROLE `reader` FOR `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("SET DEFAULT ROLE `reader` FOR `app_clone`@`%`")
        );
        // MySQL partial revokes.
        assert_eq!(
            rewrite(
                "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("REVOKE INSERT ON `mysql`.* FROM `app_clone`@`%`")
        );
        // A grantee-like text inside a quoted identifier is not the grantee.
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `x TO ``app```.* TO `app`@`%`",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT ON `x TO ``app```.* TO `app_clone`@`%`")
        );
    }

    #[test]
    fn grantee_names_needing_escapes() {
        // As MariaDB 10.11 prints the user  pr`o'b\e  (observed with SHOW GRANTS).
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `probe%db`.* TO `pr``o'b\\e`@`1.2.3.4`",
                "pr`o'b\\e",
                "1.2.3.4",
                "pr`o'b\\e_clone"
            ),
            replay("GRANT SELECT ON `probe%db`.* TO `pr``o'b\\e_clone`@`1.2.3.4`")
        );
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `db`.* TO 'it''s\\\\'@'%'",
                "it's\\",
                "%",
                "it's\\_clone"
            ),
            replay("GRANT SELECT ON `db`.* TO `it's\\_clone`@`%`")
        );
    }

    #[test]
    fn usage_identified_and_require_are_dropped() {
        let hash = "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3";
        assert_eq!(
            rewrite(
                &format!("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}'"),
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Usage)
        );
        assert_eq!(
            rewrite(
                &format!(
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}' REQUIRE SSL"
                ),
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Usage)
        );
        assert_eq!(
            rewrite("GRANT USAGE ON *.* TO `app`@`%`", "app", "%", "app_clone"),
            Ok(GrantLine::Usage)
        );
        // Observed on MariaDB 10.11: REQUIRE parts without AND, then resource limits.
        assert_eq!(
            rewrite(
                &format!(
                    "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{hash}' REQUIRE ISSUER '/CN=i' \
                     SUBJECT '/CN=a''b\\\\c WITH x' CIPHER 'AES' WITH MAX_QUERIES_PER_HOUR 5"
                ),
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT USAGE ON *.* TO `app_clone`@`%` WITH MAX_QUERIES_PER_HOUR 5")
        );
        assert_eq!(
            rewrite(
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED VIA ed25519 USING 'abc' OR mysql_native_password USING 'x' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT USAGE ON *.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
        // MySQL 5.7: IDENTIFIED WITH <plugin> AS '<hash>'.
        assert_eq!(
            rewrite(
                "GRANT SELECT ON `db`.* TO 'app'@'%' IDENTIFIED WITH 'mysql_native_password' AS '*AB' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            replay("GRANT SELECT ON `db`.* TO `app_clone`@`%` WITH GRANT OPTION")
        );
    }

    #[test]
    fn other_lines_are_classified_or_refused() {
        assert_eq!(
            rewrite(
                "GRANT PROXY ON ''@'%' TO 'app'@'%' WITH GRANT OPTION",
                "app",
                "%",
                "app_clone"
            ),
            Ok(GrantLine::Proxy)
        );
        assert_eq!(
            rewrite("SHOW WARNINGS", "app", "%", "app_clone"),
            Ok(GrantLine::Unknown)
        );
        assert!(rewrite("GRANT SELECT ON `db`.* TO `other`@`%`", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.* TO `app`@`10.%`", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.* TO `app", "app", "%", "x").is_err());
        assert!(rewrite("GRANT SELECT ON `db`.*", "app", "%", "x").is_err());
        assert!(
            rewrite(
                "GRANT SELECT ON `db`.* TO `app`@`%` BANANA",
                "app",
                "%",
                "x"
            )
            .is_err()
        );
        // The error never quotes the line.
        let secret = "GRANT SELECT ON `s3cr3t`.* TO `other`@`%`";
        assert!(
            !rewrite(secret, "app", "%", "x")
                .unwrap_err()
                .contains("s3cr3t")
        );
        // Host names compare case-insensitively, as the server does.
        assert!(
            rewrite(
                "GRANT SELECT ON `db`.* TO `app`@`DB.example`",
                "app",
                "db.example",
                "x"
            )
            .is_ok()
        );
    }
}
