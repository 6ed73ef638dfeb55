//! Creates the `tokens` table and the indexes that the digest lookup and the
//! owner listing use.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Times are microseconds since the Unix epoch in UTC: one integer type
        // that both engines compare exactly, with no text formats or zones.
        manager
            .create_table(
                Table::create()
                    .table(Tokens::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(Tokens::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Tokens::Owner).string_len(128).not_null())
                    .col(ColumnDef::new(Tokens::Name).text().not_null())
                    .col(ColumnDef::new(Tokens::Digest).binary().not_null())
                    .col(
                        ColumnDef::new(Tokens::DisplayHint)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Tokens::Scopes).text().not_null())
                    .col(ColumnDef::new(Tokens::CreatedAt).big_integer().not_null())
                    .col(ColumnDef::new(Tokens::ExpiresAt).big_integer().null())
                    .col(ColumnDef::new(Tokens::LastUsedAt).big_integer().null())
                    .col(ColumnDef::new(Tokens::RevokedAt).big_integer().null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("tokens_digest_key")
                    .table(Tokens::Table)
                    .col(Tokens::Digest)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("tokens_owner_created_at_id_idx")
                    .table(Tokens::Table)
                    .col(Tokens::Owner)
                    .col(Tokens::CreatedAt)
                    .col(Tokens::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        // The admin inventory lists every owner, so it pages without the owner prefix.
        manager
            .create_index(
                Index::create()
                    .name("tokens_created_at_id_idx")
                    .table(Tokens::Table)
                    .col(Tokens::CreatedAt)
                    .col(Tokens::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Tokens::Table).if_exists().to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Tokens {
    Table,
    Id,
    Owner,
    Name,
    Digest,
    DisplayHint,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RevokedAt,
}
