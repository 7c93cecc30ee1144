//! The rotation event Secrets Manager sends, validated before any API call.

use std::fmt;

use serde_json::Value;

use crate::error::Error;
use crate::protocol::Step;

/// A validated rotation event.
///
/// `Debug` omits the `RotationToken`, which identifies the request's source and is sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct RotationEvent {
    /// The step to run.
    pub step: Step,
    /// ARN (or name) of the secret.
    pub secret_id: String,
    /// Id of the version being rotated in; the idempotency key.
    pub token: String,
    /// Opaque token passed through to `PutSecretValue`; never logged.
    pub rotation_token: Option<String>,
}

impl fmt::Debug for RotationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationEvent")
            .field("step", &self.step)
            .field("secret_id", &self.secret_id)
            .field("token", &self.token)
            .field(
                "rotation_token",
                &self.rotation_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RotationEvent {
    /// Validates a raw payload: `Step`, `SecretId` and `ClientRequestToken` must be non-empty printable
    /// ASCII strings; `RotationToken`, when present and not null, must be a string. Other fields are
    /// ignored. No field value is echoed in an error.
    pub fn from_value(payload: &Value) -> Result<Self, Error> {
        let object = payload.as_object().ok_or(Error::InvalidEvent {
            field: "payload",
            problem: "must be a JSON object",
        })?;
        let required = |field: &'static str| -> Result<String, Error> {
            match object.get(field) {
                None | Some(Value::Null) => Err(Error::InvalidEvent {
                    field,
                    problem: "is missing",
                }),
                Some(Value::String(s)) if s.is_empty() => Err(Error::InvalidEvent {
                    field,
                    problem: "is empty",
                }),
                Some(Value::String(s)) if !s.bytes().all(|b| (b' '..=b'~').contains(&b)) => {
                    Err(Error::InvalidEvent {
                        field,
                        problem: "contains characters other than printable ASCII",
                    })
                }
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(Error::InvalidEvent {
                    field,
                    problem: "must be a string",
                }),
            }
        };
        let step = required("Step")?;
        let secret_id = required("SecretId")?;
        let token = required("ClientRequestToken")?;
        let rotation_token = match object.get("RotationToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(Error::InvalidEvent {
                    field: "RotationToken",
                    problem: "must be a string",
                });
            }
        };
        Ok(RotationEvent {
            step: Step::parse(&step),
            secret_id,
            token,
            rotation_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sample_events_parse() {
        for (text, step) in [
            (
                include_str!("../events/createSecret.json"),
                Step::CreateSecret,
            ),
            (include_str!("../events/setSecret.json"), Step::SetSecret),
            (include_str!("../events/testSecret.json"), Step::TestSecret),
            (
                include_str!("../events/finishSecret.json"),
                Step::FinishSecret,
            ),
            (
                include_str!("../events/mariadb/createSecret.json"),
                Step::CreateSecret,
            ),
            (
                include_str!("../events/mariadb/setSecret.json"),
                Step::SetSecret,
            ),
            (
                include_str!("../events/mariadb/testSecret.json"),
                Step::TestSecret,
            ),
            (
                include_str!("../events/mariadb/finishSecret.json"),
                Step::FinishSecret,
            ),
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            let event = RotationEvent::from_value(&value).unwrap();
            assert_eq!(event.step, step);
            assert!(!event.secret_id.is_empty());
            assert_eq!(event.token.len(), 36);
            assert!(event.rotation_token.is_some());
        }
    }

    #[test]
    fn fields_are_checked_in_order_and_named() {
        let cases = [
            (json!({}), "Step", "is missing"),
            (json!({"Step": ""}), "Step", "is empty"),
            (json!({"Step": 3}), "Step", "must be a string"),
            (json!({"Step": "createSecret"}), "SecretId", "is missing"),
            (
                json!({"Step": "createSecret", "SecretId": "a\u{7f}"}),
                "SecretId",
                "contains characters other than printable ASCII",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t\n"}),
                "ClientRequestToken",
                "contains characters other than printable ASCII",
            ),
            (
                json!({"Step": "createSecret", "SecretId": "s", "ClientRequestToken": "t", "RotationToken": 1}),
                "RotationToken",
                "must be a string",
            ),
            (json!([1]), "payload", "must be a JSON object"),
        ];
        for (payload, want_field, want_problem) in cases {
            match RotationEvent::from_value(&payload) {
                Err(Error::InvalidEvent { field, problem }) => {
                    assert_eq!((field, problem), (want_field, want_problem), "{payload}")
                }
                other => panic!("{payload}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn extra_fields_are_ignored_and_rotation_token_is_redacted() {
        let event = RotationEvent::from_value(&json!({
            "Step": "create_secret", "SecretId": "s", "ClientRequestToken": "t",
            "RotationToken": "very-secret-rotation-token", "Extra": {"x": 1}
        }))
        .unwrap();
        assert_eq!(event.step, Step::Other("create_secret".into()));
        assert!(!format!("{event:?}").contains("very-secret-rotation-token"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Any JSON value; every string carries the marker `Zq`, which no error text contains.
        fn json() -> impl Strategy<Value = Value> {
            crate::arbitrary::json(4, 32, 6, "[A-Za-z]{1,12}")
        }

        /// A value for an event field: mostly strings near the valid ones, sometimes anything.
        fn field() -> impl Strategy<Value = Option<Value>> {
            prop::option::of(prop_oneof![
                "Zq[ -~]{0,40}".prop_map(Value::String),
                "Zq\\PC{0,20}".prop_map(Value::String),
                Just(Value::String(String::new())),
                json(),
            ])
        }

        proptest! {
            #[test]
            fn any_payload_parses_or_is_rejected_as_invalid_event(
                payload in json(),
                step in field(),
                secret_id in field(),
                token in field(),
                rotation_token in field(),
            ) {
                let mut payload = payload;
                if let Value::Object(object) = &mut payload {
                    for (key, value) in [
                        ("Step", step),
                        ("SecretId", secret_id),
                        ("ClientRequestToken", token),
                        ("RotationToken", rotation_token),
                    ] {
                        if let Some(value) = value {
                            object.insert(key.to_owned(), value);
                        }
                    }
                }
                match RotationEvent::from_value(&payload) {
                    Ok(event) => {
                        for (key, parsed) in [
                            ("Step", event.step.to_string()),
                            ("SecretId", event.secret_id.clone()),
                            ("ClientRequestToken", event.token.clone()),
                        ] {
                            prop_assert_eq!(payload[key].as_str(), Some(parsed.as_str()));
                            prop_assert!(parsed.bytes().all(|b| (b' '..=b'~').contains(&b)));
                        }
                        if let Some(rotation_token) = event.rotation_token.as_deref() {
                            prop_assert_eq!(payload["RotationToken"].as_str(), Some(rotation_token));
                            let shown = format!("{event:?}");
                            prop_assert!(rotation_token.len() <= 10 || !shown.contains(rotation_token));
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e.error_type(), "InvalidEvent");
                        let shown = format!("{e} {e:?}");
                        prop_assert!(!shown.contains("Zq"), "{}", shown);
                    }
                }
            }
        }
    }
}
