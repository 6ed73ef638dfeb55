//! List: one page of tokens, newest first.

use super::{
    Caller, Permission, ServiceError, TokenManager,
    page_token::{self, QueryBinding},
};
use crate::{domain::TokenRecord, storage::ListQuery};

/// Page size when the request gives 0.
pub(crate) const DEFAULT_PAGE_SIZE: i32 = 50;
/// Largest page; larger requests are reduced to it.
pub(crate) const MAX_PAGE_SIZE: i32 = 1000;

/// A List request.
#[derive(Debug, Clone, Default)]
pub struct ListInput {
    /// Owner to list; empty means the caller's own, or every owner for an admin.
    pub owner: String,
    /// Requested page size.
    pub page_size: i32,
    /// Token from the previous page.
    pub page_token: String,
    /// Whether revoked tokens are included.
    pub include_revoked: bool,
}

/// One page of tokens.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Tokens, newest first.
    pub records: Vec<TokenRecord>,
    /// Token for the next page, empty on the last page.
    pub next_page_token: String,
}

impl TokenManager {
    /// Lists the tokens the caller may see.
    ///
    /// # Errors
    ///
    /// Returns [`ServiceError::PermissionDenied`] for another owner without
    /// admin, [`ServiceError::InvalidArgument`] for a negative page size or
    /// a page token from another query, and [`ServiceError::Unavailable`]
    /// when the database cannot be reached.
    pub async fn list(&self, caller: &Caller, input: ListInput) -> Result<ListPage, ServiceError> {
        caller.require(Permission::Manage, "List")?;

        let owner = if input.owner.is_empty() && caller.is_admin() {
            None
        } else {
            Some(caller.resolve_owner(&input.owner)?)
        };
        let page_size = match input.page_size {
            size if size < 0 => {
                return Err(ServiceError::invalid(
                    "page_size",
                    format!("page_size must be 0 or more, got {size}"),
                ));
            }
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let binding = QueryBinding {
            owner: owner.as_ref().map_or("", |o| o.as_str()),
            include_revoked: input.include_revoked,
        };
        let after = if input.page_token.is_empty() {
            None
        } else {
            let position = page_token::decode(&self.page_key, &binding, &input.page_token).ok_or_else(|| {
                ServiceError::invalid(
                    "page_token",
                    "page_token is invalid or was issued for a different owner or include_revoked value; start again without it",
                )
            })?;
            Some(position)
        };

        let limit = page_size as usize;
        let mut records = self
            .store
            .list(&ListQuery {
                owner: owner.clone(),
                include_revoked: input.include_revoked,
                after,
                limit: limit as u64 + 1,
            })
            .await?;

        // One extra row was read to learn whether another page follows.
        let next_page_token = if records.len() > limit {
            records.truncate(limit);
            let last = &records[limit - 1];
            page_token::encode(&self.page_key, &binding, last.created_at, last.id)
        } else {
            String::new()
        };
        Ok(ListPage {
            records,
            next_page_token,
        })
    }

    /// Returns the current time from the injected clock, for status fields.
    pub fn now(&self) -> crate::domain::Timestamp {
        self.clock.now()
    }
}
