//! ElastiCache: `DescribeUsers` by `UserId`, `ModifyUser` with `Passwords`.

use aws_sdk_elasticache::Client;
use aws_sdk_elasticache::config::Builder as ConfigOverride;
use aws_sdk_elasticache::types::User;

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
        let request = client.describe_users().user_id(user.id());
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
    // The filter is exact, but the answer is a list: take the user it asked for.
    Ok(out.and_then(|out| {
        out.users()
            .iter()
            .find(|u| u.user_id() == Some(user.id()))
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
    api_call(ctx, user, "ModifyUser", &exposed, || async {
        // `Passwords` alone: the access string, engine and authentication type are left as
        // they are.
        let request = client
            .modify_user()
            .user_id(user.id())
            .set_passwords(Some(exposed.iter().map(|p| (*p).to_owned()).collect()));
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
    CacheUser {
        service: Service::ElastiCache,
        name: u.user_name().unwrap_or_default().to_owned(),
        id: u.user_id().unwrap_or_default().to_owned(),
        arn: u.arn().map(str::to_owned),
        status: UserStatus::parse(u.status().unwrap_or_default()),
        authentication: AuthType::parse(
            u.authentication()
                .and_then(|a| a.r#type())
                .map_or("", |t| t.as_str()),
        ),
        password_count: count(u.authentication().and_then(|a| a.password_count())),
        engine: u.engine().map(str::to_owned),
        groups: u.user_group_ids().to_vec(),
    }
}
