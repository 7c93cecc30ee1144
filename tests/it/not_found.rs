//! "Not found" is an answer only where the protocol expects absence (docs/protocol.md 5.3): the
//! token's pending value in createSecret and `AWSPREVIOUS` in setSecret. A `masterarn` naming
//! no secret is a `SecretsManagerError` naming the operation and the master secret, and nothing
//! changes.

use serde_json::json;

use crate::support::*;

on_every_server!(a_master_secret_that_does_not_exist_is_an_error);

async fn a_master_secret_that_does_not_exist_is_an_error(server: Server) {
    let stack = require_stack!();
    let client = sm_client().await;
    let name = unique("nomaster");
    let password = fixture_password();
    let user = stack.create_user(server, &name, &password).await;
    let missing = format!(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf",
        unique("dsr-test/no-such-master")
    );
    let mut secret = stack.secret(server, &name, &password);
    secret["masterarn"] = json!(missing);
    secret["rotation_strategy"] = json!("alternating-users");
    let arn = create_secret(&client, &secret).await;
    let token = token();
    start_rotation(&client, &arn, &token).await;
    let function = Function::new(stack).await;
    // createSecret never reads the master secret; the token's pending value is absent, as expected.
    function.invoke("createSecret", &arn, &token).await.unwrap();

    let before = snapshot(&client, &arn).await;
    let err = function
        .invoke("setSecret", &arn, &token)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "SecretsManagerError", "{err}");
    let db_secret_rotator::Error::SecretsManager {
        secret_id,
        operation,
        code,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(secret_id, &missing);
    assert!(operation.starts_with("GetSecretValue"), "{operation}");
    assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
    let text = err.to_string();
    assert!(
        text.contains(&missing) && text.contains("GetSecretValue"),
        "{text}"
    );

    // Nothing changed: no version, label or value; the password still logs in; no clone.
    assert_eq!(snapshot(&client, &arn).await, before);
    stack.login(server, &name, &password).await.unwrap();
    assert!(!stack.user_exists(server, &format!("{name}_clone")).await);
    user.drop(stack).await;
}
