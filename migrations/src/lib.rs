//! Schema migrations for tokend, applied at start-up and by `tokend migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261204_000001_create_tokens;

/// Lists every migration in the order it applies.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261204_000001_create_tokens::Migration)]
    }
}
