//! An account's TLS requirement (`REQUIRE …`), read from its `mysql.user` row so that the clone
//! gets the same (docs/protocol.md 5.8).

use super::quote::quote_literal;

/// `ssl_type`, `ssl_cipher`, `x509_issuer`, `x509_subject` of a `mysql.user` row: bytes, since the
/// last three are BLOBs in MySQL; nullable, since MariaDB's view declares `ssl_type` so.
pub(super) type RequireRow = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

/// An account's TLS requirement (`REQUIRE …`), as stored in its `mysql.user` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum TlsRequirement {
    /// `REQUIRE NONE` (`ssl_type` empty).
    None,
    /// `REQUIRE SSL` (`ssl_type` `ANY`).
    Ssl,
    /// `REQUIRE X509`.
    X509,
    /// `REQUIRE ISSUER '…' AND SUBJECT '…' AND CIPHER '…'` (`ssl_type` `SPECIFIED`); empty parts
    /// are left out.
    Specified {
        /// `x509_issuer`.
        issuer: String,
        /// `x509_subject`.
        subject: String,
        /// `ssl_cipher`.
        cipher: String,
    },
}

impl TlsRequirement {
    /// From `mysql.user`'s `ssl_type`, `ssl_cipher`, `x509_issuer`, `x509_subject` (MySQL: a
    /// table; MariaDB 10.4+: a view over `mysql.global_priv`). `None` for an unknown `ssl_type`.
    pub(super) fn from_row(
        ssl_type: &str,
        cipher: &str,
        issuer: &str,
        subject: &str,
    ) -> Option<Self> {
        match ssl_type.to_ascii_uppercase().as_str() {
            "" | "NONE" => Some(TlsRequirement::None),
            "ANY" => Some(TlsRequirement::Ssl),
            "X509" => Some(TlsRequirement::X509),
            "SPECIFIED" if cipher.is_empty() && issuer.is_empty() && subject.is_empty() => {
                Some(TlsRequirement::X509)
            }
            "SPECIFIED" => Some(TlsRequirement::Specified {
                issuer: issuer.to_owned(),
                subject: subject.to_owned(),
                cipher: cipher.to_owned(),
            }),
            _ => None,
        }
    }

    /// The `REQUIRE …` clause, literals escaped for the session's `sql_mode`.
    pub(super) fn to_sql(&self, no_backslash_escapes: bool) -> String {
        match self {
            TlsRequirement::None => "REQUIRE NONE".to_owned(),
            TlsRequirement::Ssl => "REQUIRE SSL".to_owned(),
            TlsRequirement::X509 => "REQUIRE X509".to_owned(),
            TlsRequirement::Specified {
                issuer,
                subject,
                cipher,
            } => {
                let parts: Vec<String> =
                    [("ISSUER", issuer), ("SUBJECT", subject), ("CIPHER", cipher)]
                        .into_iter()
                        .filter(|(_, value)| !value.is_empty())
                        .map(|(kind, value)| {
                            format!("{kind} {}", quote_literal(value, no_backslash_escapes))
                        })
                        .collect();
                format!("REQUIRE {}", parts.join(" AND "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_requirements() {
        use TlsRequirement as R;
        assert_eq!(R::from_row("", "", "", ""), Some(R::None));
        assert_eq!(R::from_row("ANY", "", "", ""), Some(R::Ssl));
        assert_eq!(R::from_row("X509", "", "", ""), Some(R::X509));
        assert_eq!(R::from_row("SPECIFIED", "", "", ""), Some(R::X509));
        assert_eq!(R::from_row("bogus", "", "", ""), None);
        let specified = R::from_row("SPECIFIED", "AES", "", "/CN=a'b\\c").unwrap();
        assert_eq!(
            specified.to_sql(false),
            r"REQUIRE SUBJECT '/CN=a\'b\\c' AND CIPHER 'AES'"
        );
        assert_eq!(
            specified.to_sql(true),
            r"REQUIRE SUBJECT '/CN=a''b\c' AND CIPHER 'AES'"
        );
        let all = R::Specified {
            issuer: "/CN=i".into(),
            subject: "/CN=s".into(),
            cipher: "AES".into(),
        };
        assert_eq!(
            all.to_sql(false),
            "REQUIRE ISSUER '/CN=i' AND SUBJECT '/CN=s' AND CIPHER 'AES'"
        );
        assert_eq!(R::None.to_sql(false), "REQUIRE NONE");
        assert_eq!(R::Ssl.to_sql(true), "REQUIRE SSL");
        assert_eq!(R::X509.to_sql(true), "REQUIRE X509");
    }
}
