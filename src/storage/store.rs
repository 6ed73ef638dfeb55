//! Reads and writes of the `tokens` table. Every query that touches one
//! token names it by digest or by id, and by owner where the caller is not
//! an admin.

use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
    sea_query::{Expr, ExprTrait},
};
use uuid::Uuid;

use super::{Engine, StoreError, entity};
use crate::domain::{Digest, Owner, ScopeSet, Timestamp, TokenRecord};

/// A token to insert.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Metadata of the new token.
    pub record: TokenRecord,
    /// Digest of its secret.
    pub digest: Digest,
}

/// The selection of one List page.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only this owner's tokens, or every owner's when `None`.
    pub owner: Option<Owner>,
    /// Whether revoked tokens are included.
    pub include_revoked: bool,
    /// The last `(created_at, id)` of the previous page; rows strictly older
    /// in that order come next.
    pub after: Option<(Timestamp, Uuid)>,
    /// Maximum rows to return.
    pub limit: u64,
}

/// The result of a Revoke. The digest comes with the record so the caller
/// can evict the token from caches without reading it again.
#[derive(Debug, Clone)]
pub enum RevokeOutcome {
    /// This call revoked the token.
    Revoked(TokenRecord, Option<Digest>),
    /// The token was already revoked; the record keeps the original time.
    AlreadyRevoked(TokenRecord, Option<Digest>),
    /// No token with this id, or not one of the given owner's.
    NotFound,
}

/// The token table on one database pool.
#[derive(Debug, Clone)]
pub struct TokenStore {
    connection: DatabaseConnection,
    engine: Engine,
}

impl TokenStore {
    pub(super) fn new(connection: DatabaseConnection, engine: Engine) -> Self {
        Self { connection, engine }
    }

    /// Returns the engine behind this store.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Returns the pool, for tests that inspect tables directly.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Applies pending migrations.
    ///
    /// # Errors
    ///
    /// Returns the driver error of the failing migration.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        Migrator::up(&self.connection, None).await?;
        Ok(())
    }

    /// Checks that the database responds to a trivial query.
    ///
    /// # Errors
    ///
    /// Returns [`StoreError::Unavailable`] or another driver error.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.connection.ping().await?;
        Ok(())
    }

    /// Inserts a new token. No existing row is ever changed.
    ///
    /// # Errors
    ///
    /// Returns the driver error; the insert is one statement, so nothing is
    /// half-written.
    pub async fn insert(&self, token: &NewToken) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(token)).await
    }

    /// Inserts many new tokens in one statement, all or none.
    ///
    /// # Errors
    ///
    /// Returns the driver error; nothing is written then.
    pub async fn insert_many(&self, tokens: &[NewToken]) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        entity::Entity::insert_many(tokens.iter().map(to_row))
            .exec_without_returning(&self.connection)
            .await?;
        Ok(())
    }

    /// Inserts a new token unless its owner already has `cap` tokens that
    /// are neither revoked nor expired at the token's creation time. Returns
    /// whether it was inserted.
    ///
    /// The count and the insert are one statement. SQLite takes its write
    /// lock before the statement reads, so concurrent calls run one after
    /// another. PostgreSQL reads a snapshot, so calls for one owner first
    /// take a transaction-scoped advisory lock on the owner. The statement
    /// after the lock reads every token that the previous holder committed.
    ///
    /// # Errors
    ///
    /// Returns the driver error; nothing is written then.
    pub async fn insert_capped(&self, token: &NewToken, cap: u64) -> Result<bool, StoreError> {
        let record = &token.record;
        let values: [sea_orm::Value; 9] = [
            record.id.into(),
            record.owner.as_str().into(),
            record.name.as_str().into(),
            token.digest.as_bytes().to_vec().into(),
            record.display_hint.as_str().into(),
            record.scopes.to_stored().into(),
            record.created_at.as_micros().into(),
            record.expires_at.map(Timestamp::as_micros).into(),
            i64::try_from(cap).unwrap_or(i64::MAX).into(),
        ];
        let inserted = match self.engine {
            Engine::Sqlite => self
                .connection
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    capped_insert_sql(|index| format!("?{index}")),
                    values,
                ))
                .await?
                .rows_affected(),
            Engine::Postgres => {
                let transaction = self.connection.begin().await?;
                transaction
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                        [OWNER_LOCK_CLASS.into(), record.owner.as_str().into()],
                    ))
                    .await?;
                let inserted = transaction
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        capped_insert_sql(|index| format!("${index}")),
                        values,
                    ))
                    .await?
                    .rows_affected();
                transaction.commit().await?;
                inserted
            }
        };
        Ok(inserted > 0)
    }

    /// Finds a token by the digest of its secret through the unique index.
    ///
    /// # Errors
    ///
    /// Returns the driver error, or [`StoreError::Corrupt`] for a bad row.
    pub async fn find_by_digest(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let row = entity::Entity::find()
            .filter(entity::Column::Digest.eq(digest.as_bytes().to_vec()))
            .one(&self.connection)
            .await?;
        row.map(to_record).transpose()
    }

    /// Finds a token by id, limited to `owner` when one is given.
    ///
    /// # Errors
    ///
    /// Returns the driver error, or [`StoreError::Corrupt`] for a bad row.
    pub async fn find_by_id(
        &self,
        id: Uuid,
        owner: Option<&Owner>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.find_row(id, owner).await?.map(to_record).transpose()
    }

    /// Reads the row of token `id`, limited to `owner` when one is given.
    async fn find_row(
        &self,
        id: Uuid,
        owner: Option<&Owner>,
    ) -> Result<Option<entity::Model>, StoreError> {
        let mut query = entity::Entity::find_by_id(id);
        if let Some(owner) = owner {
            query = query.filter(entity::Column::Owner.eq(owner.as_str()));
        }
        Ok(query.one(&self.connection).await?)
    }

    /// Counts the tokens of `owner` that are neither revoked nor expired at `now`.
    ///
    /// # Errors
    ///
    /// Returns the driver error.
    pub async fn count_active(&self, owner: &Owner, now: Timestamp) -> Result<u64, StoreError> {
        let count = entity::Entity::find()
            .filter(entity::Column::Owner.eq(owner.as_str()))
            .filter(entity::Column::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(entity::Column::ExpiresAt.is_null())
                    .add(entity::Column::ExpiresAt.gt(now.as_micros())),
            )
            .count(&self.connection)
            .await?;
        Ok(count)
    }

    /// Lists tokens newest first with keyset pagination on `(created_at, id)`,
    /// so inserts during paging neither duplicate nor skip rows.
    ///
    /// # Errors
    ///
    /// Returns the driver error, or [`StoreError::Corrupt`] for a bad row.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<TokenRecord>, StoreError> {
        let mut select = entity::Entity::find();
        if let Some(owner) = &query.owner {
            select = select.filter(entity::Column::Owner.eq(owner.as_str()));
        }
        if !query.include_revoked {
            select = select.filter(entity::Column::RevokedAt.is_null());
        }
        if let Some((created_at, id)) = query.after {
            // A row-value comparison, unlike the equivalent OR of two
            // conditions, lets both engines seek the index to the position,
            // so a page deep in the listing costs the same as the first.
            let position = Expr::tuple([
                Expr::col(entity::Column::CreatedAt),
                Expr::col(entity::Column::Id),
            ]);
            let after = Expr::tuple([Expr::value(created_at.as_micros()), Expr::value(id)]);
            select = select.filter(position.lt(after));
        }
        let rows = select
            .order_by_desc(entity::Column::CreatedAt)
            .order_by_desc(entity::Column::Id)
            .limit(query.limit)
            .all(&self.connection)
            .await?;
        rows.into_iter().map(to_record).collect()
    }

    /// Revokes a token at `now`, limited to `owner` when one is given.
    ///
    /// The update only touches a row that is not revoked yet, so concurrent
    /// revokes agree on one `revoked_at` and a repeat returns the original.
    ///
    /// # Errors
    ///
    /// Returns the driver error.
    pub async fn revoke(
        &self,
        id: Uuid,
        owner: Option<&Owner>,
        now: Timestamp,
    ) -> Result<RevokeOutcome, StoreError> {
        let mut update = entity::Entity::update_many()
            .col_expr(entity::Column::RevokedAt, Expr::value(now.as_micros()))
            .filter(entity::Column::Id.eq(id))
            .filter(entity::Column::RevokedAt.is_null());
        if let Some(owner) = owner {
            update = update.filter(entity::Column::Owner.eq(owner.as_str()));
        }
        let changed = update.exec(&self.connection).await?.rows_affected;

        let Some(row) = self.find_row(id, owner).await? else {
            return Ok(RevokeOutcome::NotFound);
        };
        let digest = row_digest(&row);
        let record = to_record(row)?;
        if changed > 0 {
            Ok(RevokeOutcome::Revoked(record, digest))
        } else {
            Ok(RevokeOutcome::AlreadyRevoked(record, digest))
        }
    }

    /// Records successful uses, one statement per chunk of
    /// [`USES_PER_STATEMENT`] tokens. Each row takes its own time. The update
    /// never moves `last_used_at` backwards and writes no other column, so a
    /// flush that races a Revoke cannot undo it. A use recorded just before
    /// the revocation is still written, because it happened while valid.
    ///
    /// The uses travel as one JSON parameter, so the SQL text is the same
    /// for every batch size: the driver prepares it once per connection
    /// instead of caching one statement per size.
    ///
    /// # Errors
    ///
    /// Returns the driver error of the first failing chunk.
    pub async fn record_uses(&self, uses: &[(Uuid, Timestamp)]) -> Result<(), StoreError> {
        let (backend, sql) = match self.engine {
            Engine::Sqlite => (DbBackend::Sqlite, RECORD_USES_SQLITE),
            Engine::Postgres => (DbBackend::Postgres, RECORD_USES_POSTGRES),
        };
        for chunk in uses.chunks(USES_PER_STATEMENT) {
            let batch = uses_json(chunk);
            self.connection
                .execute_raw(Statement::from_sql_and_values(backend, sql, [batch.into()]))
                .await?;
        }
        Ok(())
    }

    /// Replaces a token's digest computed under a previous hashing key with
    /// the one under the current key. The update names the old digest, so
    /// replicas that race to re-hash the same token write once.
    ///
    /// # Errors
    ///
    /// Returns the driver error.
    pub async fn replace_digest(
        &self,
        id: Uuid,
        old: &Digest,
        new: &Digest,
    ) -> Result<(), StoreError> {
        entity::Entity::update_many()
            .col_expr(entity::Column::Digest, Expr::value(new.as_bytes().to_vec()))
            .filter(entity::Column::Id.eq(id))
            .filter(entity::Column::Digest.eq(old.as_bytes().to_vec()))
            .exec(&self.connection)
            .await?;
        Ok(())
    }

    /// Returns the digest of token `id`, to evict it from caches.
    ///
    /// # Errors
    ///
    /// Returns the driver error.
    pub async fn find_digest(&self, id: Uuid) -> Result<Option<Digest>, StoreError> {
        let row = self.find_row(id, None).await?;
        Ok(row.as_ref().and_then(row_digest))
    }
}

impl TokenStore {
    /// Tells other replicas that token `id` was revoked. On SQLite, which
    /// has one server process, it does nothing.
    ///
    /// # Errors
    ///
    /// Returns the driver error.
    pub async fn notify_revoked(&self, id: Uuid) -> Result<(), StoreError> {
        if self.engine != Engine::Postgres {
            return Ok(());
        }
        self.connection
            .execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [REVOCATION_CHANNEL.into(), id.to_string().into()],
            ))
            .await?;
        Ok(())
    }
}

/// PostgreSQL notification channel that carries revoked token ids.
pub const REVOCATION_CHANNEL: &str = "tokend_revocations";

/// Tokens per last-used statement, which bounds the size of one JSON
/// parameter to about 60 KB.
pub const USES_PER_STATEMENT: usize = 1000;

/// The last-used update on SQLite, where ids are 16-byte blobs.
const RECORD_USES_SQLITE: &str = "UPDATE tokens SET last_used_at = uses.used_at \
     FROM (SELECT unhex(json_extract(value, '$.id')) AS id, \
                  json_extract(value, '$.at') AS used_at \
           FROM json_each(?1)) AS uses \
     WHERE tokens.id = uses.id \
       AND (tokens.last_used_at IS NULL OR tokens.last_used_at < uses.used_at)";

/// The last-used update on PostgreSQL, where ids are `uuid` values.
const RECORD_USES_POSTGRES: &str = "UPDATE tokens SET last_used_at = uses.at \
     FROM jsonb_to_recordset($1::jsonb) AS uses(id uuid, at bigint) \
     WHERE tokens.id = uses.id \
       AND (tokens.last_used_at IS NULL OR tokens.last_used_at < uses.at)";

/// The first key of the advisory locks on owners ("tknd" in ASCII). Locks
/// with two keys use a key space apart from single-key locks, which other
/// programs on the same database are more likely to take.
const OWNER_LOCK_CLASS: i32 = 0x746b_6e64;

/// Builds the insert of one token that counts its owner's active tokens in
/// the same statement. `placeholder(n)` writes the engine's n-th parameter:
/// 1 id, 2 owner, 3 name, 4 digest, 5 display hint, 6 scopes, 7 creation
/// time, which is also the time the count is taken at, 8 expiry, 9 cap.
fn capped_insert_sql(placeholder: impl Fn(u8) -> String) -> String {
    let p = placeholder;
    format!(
        "INSERT INTO tokens (id, owner, name, digest, display_hint, scopes, created_at, expires_at) \
         SELECT {}, {}, {}, {}, {}, {}, {}, {} \
         WHERE (SELECT COUNT(*) FROM tokens \
                WHERE owner = {} AND revoked_at IS NULL \
                  AND (expires_at IS NULL OR expires_at > {})) < {}",
        p(1),
        p(2),
        p(3),
        p(4),
        p(5),
        p(6),
        p(7),
        p(8),
        p(2),
        p(7),
        p(9)
    )
}

/// Encodes uses as `[{"id":"<32 hex digits>","at":<microseconds>},…]`, a
/// form both engines parse. Ids and numbers need no escaping.
fn uses_json(uses: &[(Uuid, Timestamp)]) -> String {
    let mut json = String::with_capacity(2 + uses.len() * 60);
    json.push('[');
    for (index, (id, at)) in uses.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"id":"{}","at":{}}}"#,
            id.simple(),
            at.as_micros()
        ));
    }
    json.push(']');
    json
}

/// Converts a new token to its row.
fn to_row(token: &NewToken) -> entity::ActiveModel {
    let record = &token.record;
    entity::ActiveModel {
        id: Set(record.id),
        owner: Set(record.owner.as_str().to_owned()),
        name: Set(record.name.clone()),
        digest: Set(token.digest.as_bytes().to_vec()),
        display_hint: Set(record.display_hint.clone()),
        scopes: Set(record.scopes.to_stored()),
        created_at: Set(record.created_at.as_micros()),
        expires_at: Set(record.expires_at.map(Timestamp::as_micros)),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
}

/// Returns a row's digest, or `None` when the stored value has the wrong length.
fn row_digest(row: &entity::Model) -> Option<Digest> {
    <[u8; 32]>::try_from(row.digest.as_slice())
        .ok()
        .map(Digest::from_bytes)
}

/// Converts a row to the domain record, checking what the schema cannot.
fn to_record(row: entity::Model) -> Result<TokenRecord, StoreError> {
    let id = row.id;
    let corrupt = |reason| StoreError::Corrupt { id, reason };
    let time = |micros: i64| Timestamp::from_micros(micros).ok_or(corrupt("time out of range"));
    let optional_time = |micros: Option<i64>| micros.map(time).transpose();

    Ok(TokenRecord {
        id,
        owner: Owner::from_stored(row.owner),
        name: row.name,
        scopes: ScopeSet::from_stored(&row.scopes),
        display_hint: row.display_hint,
        created_at: time(row.created_at)?,
        expires_at: optional_time(row.expires_at)?,
        last_used_at: optional_time(row.last_used_at)?,
        revoked_at: optional_time(row.revoked_at)?,
    })
}
