//! Hashing-key rotation: tokens hashed under a previous key keep working and
//! move to the current key on first use.

use sea_orm::{ConnectionTrait, Statement};
use tokend::{domain::HashingKey, grpc::pb};

use crate::common::*;

/// Reads the stored digest of token `id` as lowercase hex.
async fn stored_digest(app: &TestApp, id: &str) -> String {
    let connection = app.manager.store().connection();
    let backend = connection.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            format!("SELECT encode(digest, 'hex') FROM tokens WHERE id = '{id}'")
        }
        // SQLite stores the UUID as 16 bytes.
        _ => format!(
            "SELECT lower(hex(digest)) FROM tokens WHERE lower(hex(id)) = '{}'",
            id.replace('-', "")
        ),
    };
    let row = connection
        .query_one_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .expect("the token row");
    row.try_get_by_index::<String>(0).unwrap()
}

fn digest_hex(key: &[u8; 32], secret: &str) -> String {
    blake3::keyed_hash(key, secret.as_bytes())
        .to_hex()
        .to_string()
}

#[tokio::test]
async fn previous_key_validates_and_rehashes() {
    let app = spawn_app().await;
    let old_key = app.key();
    let admin = app.admin().await;
    let service = app.validator().await;
    let used = app.generate_for(&admin.secret, "u1", &[]).await;
    let unused = app.generate_for(&admin.secret, "u1", &[]).await;

    let new_bytes: [u8; 32] = rand::random();
    let new_key = HashingKey::from_bytes(new_bytes);
    let app = app
        .restart_with_keys(new_key.clone(), vec![old_key.clone()])
        .await;

    assert_eq!(
        app.validate_result(&service.secret, &used.secret).await,
        pb::ValidateResult::Valid
    );
    assert_eq!(
        stored_digest(&app, &used.id).await,
        digest_hex(&new_bytes, &used.secret)
    );

    // Without the previous key, only tokens used during the rotation remain.
    let app = app.restart_with_keys(new_key, Vec::new()).await;
    assert_eq!(
        app.validate_result(&service.secret, &used.secret).await,
        pb::ValidateResult::Valid
    );
    assert_eq!(
        app.validate_result(&service.secret, &unused.secret).await,
        pb::ValidateResult::NotFound
    );
}
