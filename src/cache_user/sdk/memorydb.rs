//! MemoryDB: `DescribeUsers` by `UserName`, `UpdateUser` with `AuthenticationMode` `password`.

use aws_sdk_memorydb::Client;
use aws_sdk_memorydb::config::Builder as ConfigOverride;
use aws_sdk_memorydb::types::{AuthenticationMode, InputAuthenticationType, User};

use super::count;
use crate::aws::retry::{AttemptError, SameInvocation};
use crate::cache_user::{
    AuthType, CacheUser, Change, PasswordSet, Service, UserArn, UserStatus, api_call,
};
use crate::deadline::StepContext;
use crate::error::Error;

pub(super) async fn describe(
    client: &Client,
    user: &UserArn,
    ctx: &StepContext<'_>,
) -> Result<Option<CacheUser>, Error> {
    let layer = ConfigOverride::default().invocation_id_generator(SameInvocation::fresh());
    let out = api_call(ctx, user, "DescribeUsers", &[], || async {
        let request = client.describe_users().user_name(user.id());
        match request
            .customize()
            .config_override(layer.clone())
            .send()
            .await
        {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_user_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(AttemptError::from_sdk(&e)),
        }
    })
    .await?;
    Ok(out.and_then(|out| {
        out.users()
            .iter()
            .find(|u| u.name() == Some(user.id()))
            .map(cache_user)
    }))
}

pub(super) async fn set_passwords(
    client: &Client,
    user: &UserArn,
    passwords: &PasswordSet,
    ctx: &StepContext<'_>,
) -> Result<Change, Error> {
    let layer = ConfigOverride::default().invocation_id_generator(SameInvocation::fresh());
    let exposed = passwords.exposed();
    api_call(ctx, user, "UpdateUser", &exposed, || async {
        // `AuthenticationMode` alone: the access string is left as it is.
        let mode = AuthenticationMode::builder()
            .r#type(InputAuthenticationType::Password)
            .set_passwords(Some(exposed.iter().map(|p| (*p).to_owned()).collect()))
            .build();
        let request = client
            .update_user()
            .user_name(user.id())
            .authentication_mode(mode);
        match request
            .customize()
            .config_override(layer.clone())
            .send()
            .await
        {
            Ok(_) => Ok(Change::Accepted),
            Err(e) => match e.as_service_error() {
                Some(s) if s.is_user_not_found_fault() => Ok(Change::NotFound),
                Some(s) if s.is_invalid_user_state_fault() => Ok(Change::NotReady),
                _ => Err(AttemptError::from_sdk(&e)),
            },
        }
    })
    .await
}

fn cache_user(u: &User) -> CacheUser {
    let name = u.name().unwrap_or_default().to_owned();
    CacheUser {
        service: Service::MemoryDb,
        id: name.clone(),
        name,
        arn: u.arn().map(str::to_owned),
        status: UserStatus::parse(u.status().unwrap_or_default()),
        authentication: AuthType::parse(
            u.authentication()
                .and_then(|a| a.r#type())
                .map_or("", |t| t.as_str()),
        ),
        password_count: count(u.authentication().and_then(|a| a.password_count())),
        engine: None,
        groups: u.acl_names().to_vec(),
    }
}
