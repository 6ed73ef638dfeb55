//! A SQLite database that becomes unwritable while the server runs: writes
//! fail closed with UNAVAILABLE, reads never return a wrong result, and the
//! server recovers without a restart once the files are writable again.
//!
//! The files are made immutable with `chattr +i`. Unlike `chmod`, that also
//! stops root, and on ext4 it applies to file descriptors that are already
//! open, so the server's pooled connections lose write access too.

use std::{
    ffi::OsString,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tokend::{grpc::pb, service::CacheSettings};
use tonic::{Code, Status};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    common::*,
    outage::{health, health_becomes},
};

/// Files with the immutable attribute set, cleared again on drop so that a
/// failing test leaves no file behind that even root cannot delete.
struct Immutable {
    paths: Vec<PathBuf>,
}

impl Immutable {
    /// Sets the immutable attribute on every path. Returns why it could not,
    /// such as a missing `chattr` or a file system without the attribute,
    /// after clearing it again on the paths already done.
    fn set(paths: &[PathBuf]) -> Result<Self, String> {
        let mut guard = Self { paths: Vec::new() };
        for path in paths {
            chattr("+i", path)?;
            guard.paths.push(path.clone());
        }
        Ok(guard)
    }

    /// Clears the attribute on every path, and fails the test when that
    /// does not work for one of them.
    fn clear(mut self) {
        let errors: Vec<String> = std::mem::take(&mut self.paths)
            .iter()
            .filter_map(|path| chattr("-i", path).err())
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("; "));
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for path in &self.paths {
            if let Err(error) = chattr("-i", path) {
                eprintln!("{error}; clear it by hand with chattr -i");
            }
        }
    }
}

/// Runs `chattr FLAG PATH`, from the e2fsprogs package.
fn chattr(flag: &str, path: &Path) -> Result<(), String> {
    let output = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .map_err(|error| format!("failed to run chattr {flag} (package e2fsprogs): {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "chattr {flag} {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(())
}

/// Checks that the immutable attribute, on the file system that contains
/// `dir`, also stops writes through a descriptor opened before it was set.
/// ext4 stops them, but tmpfs on Linux 6.18 accepts the attribute and lets
/// such writes through, which would make the server's writes succeed.
fn check_immutable_stops_open_writers(dir: &Path) -> Result<(), String> {
    let path = dir.join("immutable-probe");
    let mut file = std::fs::File::create(&path)
        .map_err(|error| format!("failed to create {}: {error}", path.display()))?;
    let immutable = Immutable::set(std::slice::from_ref(&path))?;
    let written = file.write_all(b"probe").and_then(|()| file.sync_all());
    immutable.clear();
    drop(file);
    let _ = std::fs::remove_file(&path);
    match written {
        Err(_) => Ok(()),
        Ok(()) => Err(format!(
            "the file system of {} accepts chattr +i but still lets open descriptors write",
            dir.display()
        )),
    }
}

/// Returns the path of SQLite's write-ahead log next to `database`.
fn wal_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push("-wal");
    PathBuf::from(name)
}

/// Asserts that a write failed with UNAVAILABLE, and never succeeded or
/// reported a missing token.
fn expect_unavailable<T: std::fmt::Debug>(result: Result<T, Status>, call: &str) {
    match result {
        Ok(value) => panic!("{call} returned OK on an unwritable database: {value:?}"),
        Err(status) => assert_eq!(
            status.code(),
            Code::Unavailable,
            "{call} on an unwritable database: {}",
            status.message()
        ),
    }
}

/// Validates `secret` where UNAVAILABLE is a correct result too. Returns
/// the result, or `None` for UNAVAILABLE.
async fn validate_or_unavailable(
    app: &TestApp,
    caller: &str,
    secret: &str,
) -> Option<pb::ValidateResult> {
    match app.validate(caller, secret, &[]).await {
        Ok(response) => Some(response.result()),
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
            None
        }
    }
}

/// Lists every token, revoked ones included, without flushing last-used
/// times first, so the listing shows only what the server wrote by itself.
async fn list_all(app: &TestApp, admin: &str) -> Result<Vec<pb::Token>, Status> {
    let request = pb::ListRequest {
        page_size: 1000,
        include_revoked: true,
        ..Default::default()
    };
    app.list(admin, request).await.map(|page| page.tokens)
}

fn find<'a>(tokens: &'a [pb::Token], id: &str) -> &'a pb::Token {
    tokens
        .iter()
        .find(|token| token.id == id)
        .unwrap_or_else(|| panic!("token {id} is not listed"))
}

/// Runs SQLite's own consistency check on `path` through a new connection.
async fn integrity_check(path: &Path) -> String {
    let connection = Database::connect(format!("sqlite://{}", path.display()))
        .await
        .expect("open the database file for the integrity check");
    let row = connection
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await
        .expect("run PRAGMA integrity_check")
        .expect("PRAGMA integrity_check returns a row");
    let result: String = row.try_get_by_index(0).unwrap();
    connection.close().await.unwrap();
    result
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_sqlite_fails_closed_and_recovers() {
    if engine() != Engine::Sqlite {
        eprintln!("an unwritable database file applies to SQLite only");
        return;
    }
    let settings = Settings {
        // The background flush tries, fails and retries during the outage.
        flush_interval: Duration::from_millis(200),
        // Long enough that entries cached before the outage outlive it on a
        // slow machine.
        cache: CacheSettings {
            ttl: Duration::from_secs(120),
            ..CacheSettings::default()
        },
        ..Settings::default()
    };
    let app = spawn_app_with(settings).await;
    let database_path = app.database.sqlite_path().unwrap();
    let admin = app.admin().await;
    let service = app.validator().await;
    let cached = app.generate_for(&admin.secret, "u1", &[]).await;
    let uncached = app.generate_for(&admin.secret, "u1", &[]).await;
    let revoked_earlier = app.generate_for(&admin.secret, "u1", &[]).await;
    let revoked_during_outage = app.generate_for(&admin.secret, "u1", &[]).await;
    let revoked_at = app
        .revoke(&admin.secret, &revoked_earlier.id)
        .await
        .unwrap()
        .revoked_at;
    let unknown = app.manager.format().generate().unwrap();
    // Validating caches the token, so Validate returns it from the cache
    // during the outage. The admin and service tokens are cached by their
    // calls above.
    assert_eq!(
        app.validate_result(&service.secret, &cached.secret).await,
        pb::ValidateResult::Valid
    );
    let before = list_all(&app, &admin.secret).await.unwrap();

    let wal = wal_path(&database_path);
    assert!(
        wal.exists(),
        "{} is missing; is WAL mode off?",
        wal.display()
    );
    let immutable = match check_immutable_stops_open_writers(app.database.dir.path())
        .and_then(|()| Immutable::set(&[database_path.clone(), wal]))
    {
        Ok(immutable) => immutable,
        Err(reason) => {
            eprintln!(
                "NOT RUN: cannot make the database files unwritable ({reason}). \
                 This test needs chattr from e2fsprogs, root (CAP_LINUX_IMMUTABLE) \
                 and a file system whose immutable attribute also stops open \
                 descriptors, such as ext4. Set TMPDIR to a directory on one."
            );
            return;
        }
    };

    let generate = pb::GenerateRequest {
        name: "during outage".into(),
        owner: "u1".into(),
        ..Default::default()
    };
    expect_unavailable(
        app.generate(&admin.secret, generate.clone()).await,
        "Generate",
    );
    expect_unavailable(
        app.revoke(&admin.secret, &revoked_during_outage.id).await,
        "Revoke",
    );
    // A repeated Revoke changes no row, so it needs no write and may still
    // succeed, but only with the original revocation time.
    match app.revoke(&admin.secret, &revoked_earlier.id).await {
        Ok(token) => assert_eq!(token.revoked_at, revoked_at),
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
    }

    let uncached_result = validate_or_unavailable(&app, &service.secret, &uncached.secret).await;
    assert!(
        matches!(uncached_result, None | Some(pb::ValidateResult::Valid)),
        "{uncached_result:?}"
    );
    let revoked_result =
        validate_or_unavailable(&app, &service.secret, &revoked_earlier.secret).await;
    assert!(
        matches!(revoked_result, None | Some(pb::ValidateResult::Revoked)),
        "{revoked_result:?}"
    );
    let unknown_result = validate_or_unavailable(&app, &service.secret, unknown.expose()).await;
    assert!(
        matches!(unknown_result, None | Some(pb::ValidateResult::NotFound)),
        "{unknown_result:?}"
    );
    // The token whose Revoke failed is still active.
    let failed_revoke_result =
        validate_or_unavailable(&app, &service.secret, &revoked_during_outage.secret).await;
    assert!(
        matches!(failed_revoke_result, None | Some(pb::ValidateResult::Valid)),
        "{failed_revoke_result:?}"
    );

    // A use during the outage, at a time that no earlier use has, is served
    // from the cache and waits for a flush that cannot write.
    app.clock.advance_seconds(60);
    let used_during_outage = at_offset(app.clock.now(), 0);
    assert_eq!(
        app.validate_result(&service.secret, &cached.secret).await,
        pb::ValidateResult::Valid
    );

    // Several flush intervals and health pings pass while the files stay
    // immutable.
    // NOTE: health is printed, not asserted. Its ping is a read, so it stays
    // SERVING while every write fails.
    let mut health_seen = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let status = health(&app).await;
        if health_seen.last() != Some(&status) {
            health_seen.push(status);
        }
    }
    eprintln!("health while the database files are immutable: {health_seen:?}");

    let listed = list_all(&app, &admin.secret).await;
    let listed_during_outage = listed.is_ok();
    match listed {
        Ok(tokens) => {
            assert_eq!(tokens.len(), before.len(), "no token was added");
            assert!(
                find(&tokens, &revoked_during_outage.id)
                    .revoked_at
                    .is_none()
            );
            assert_ne!(
                find(&tokens, &cached.id).last_used_at,
                Some(used_during_outage),
                "a last-used time was written to an immutable file"
            );
        }
        Err(status) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
    }
    eprintln!(
        "reads while the database files are immutable: uncached Validate {uncached_result:?}, \
         revoked {revoked_result:?}, unknown {unknown_result:?}, List ok: {listed_during_outage} \
         (None is UNAVAILABLE)"
    );

    immutable.clear();

    let recovered = app.generate(&admin.secret, generate).await;
    assert!(
        recovered.is_ok(),
        "Generate after the files became writable again: {recovered:?}"
    );
    assert_eq!(
        app.validate_result(&service.secret, &revoked_during_outage.secret)
            .await,
        pb::ValidateResult::Valid,
        "the Revoke that failed during the outage left the token active"
    );
    let tokens = list_all(&app, &admin.secret).await.unwrap();
    assert!(
        find(&tokens, &revoked_during_outage.id)
            .revoked_at
            .is_none()
    );
    assert_eq!(
        tokens.len(),
        before.len() + 1,
        "only the Generate after recovery added a token"
    );
    assert!(
        app.revoke(&admin.secret, &revoked_during_outage.id)
            .await
            .is_ok(),
        "Revoke after the files became writable again"
    );
    assert_eq!(
        app.validate_result(&service.secret, &revoked_during_outage.secret)
            .await,
        pb::ValidateResult::Revoked
    );
    assert_eq!(
        app.validate_result(&service.secret, &uncached.secret).await,
        pb::ValidateResult::Valid
    );

    // The periodic flush, not the test, writes the use kept from the outage.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last_used_at = None;
    while Instant::now() < deadline {
        let tokens = list_all(&app, &admin.secret).await.unwrap();
        last_used_at = find(&tokens, &cached.id).last_used_at;
        if last_used_at == Some(used_during_outage) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last_used_at,
        Some(used_during_outage),
        "the use recorded during the outage was not written within 5 s"
    );

    assert!(
        health_becomes(&app, ServingStatus::Serving, Duration::from_secs(2))
            .await
            .is_some(),
        "health is SERVING after the files became writable again"
    );
    assert_eq!(integrity_check(&database_path).await, "ok");
}
