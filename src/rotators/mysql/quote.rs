//! Literals and identifiers for MySQL and MariaDB statements (docs/protocol.md 5.7).
//!
//! The password statements take no `?` placeholder (MariaDB 10.11 answers 1064 to `ALTER USER …
//! IDENTIFIED BY ?`, an integration test proves it), so literals are escaped here for the
//! session's `sql_mode`. Accounts are backtick identifiers, which no `sql_mode` changes.

/// A string literal for a session whose `sql_mode` has (`no_backslash_escapes`) or lacks
/// `NO_BACKSLASH_ESCAPES`. With it, backslashes are ordinary characters and only `'` is doubled;
/// without it, `\`, `'`, `"`, NUL, newline, carriage return and Ctrl-Z are backslash-escaped, as
/// `mysql_real_escape_string` does. The result may contain a password: never log it.
pub fn quote_literal(value: &str, no_backslash_escapes: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' if no_backslash_escapes => out.push_str("''"),
            _ if no_backslash_escapes => out.push(c),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A backtick-quoted identifier (backticks doubled); `sql_mode` does not change its meaning.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// An account name, `` `user`@`host` ``.
pub fn account_sql(user: &str, host: &str) -> String {
    format!("{}@{}", quote_identifier(user), quote_identifier(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_with_backslash_escapes() {
        assert_eq!(quote_literal("plain", false), "'plain'");
        assert_eq!(quote_literal("", false), "''");
        assert_eq!(quote_literal(r"a'b\c", false), r"'a\'b\\c'");
        assert_eq!(quote_literal("q\"", false), r#"'q\"'"#);
        assert_eq!(
            quote_literal("nul\0nl\ncr\rz\u{1a}", false),
            r"'nul\0nl\ncr\rz\Z'"
        );
        assert_eq!(quote_literal("%_é€", false), "'%_é€'");
        // A trailing backslash must not escape the closing quote.
        assert_eq!(quote_literal("x\\", false), r"'x\\'");
        assert_eq!(quote_literal("\\'", false), r"'\\\''");
    }

    #[test]
    fn literals_with_no_backslash_escapes() {
        assert_eq!(quote_literal("plain", true), "'plain'");
        assert_eq!(quote_literal(r"a'b\c", true), r"'a''b\c'");
        assert_eq!(quote_literal("x\\", true), r"'x\'");
        assert_eq!(quote_literal("''", true), "''''''");
        assert_eq!(quote_literal("q\"\n\0", true), "'q\"\n\0'");
    }

    #[test]
    fn identifiers_and_accounts() {
        assert_eq!(account_sql("app", "%"), "`app`@`%`");
        assert_eq!(account_sql("a`b'c\\", "10.0.%"), "`a``b'c\\`@`10.0.%`");
    }
}
