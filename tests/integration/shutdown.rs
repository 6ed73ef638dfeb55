//! Graceful stop of the real binary: SIGTERM in the middle of a Validate
//! load finishes the calls in flight, rejects new calls, writes pending
//! last-used times and exits 0.

use std::{
    net::{SocketAddr, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use tokend::grpc::pb::{self, token_service_client::TokenServiceClient};
use tonic::{
    Code,
    transport::{Channel, Endpoint},
};

use crate::{
    common::{TestDatabase, authed},
    process::{self, Server, admin_create},
};

/// Grace period given to the server. The calls in flight need a fraction of it.
const GRACE: Duration = Duration::from_secs(5);
/// Slack on top of the grace period for process exit on a busy machine.
const EXIT_MARGIN: Duration = Duration::from_secs(5);
/// Concurrent Validate loops, each on its own HTTP/2 connection.
const WORKERS: usize = 8;
/// Validations that complete before the signal, so it lands mid-load.
const CALLS_BEFORE_SIGNAL: usize = 400;
/// Upper bounds on each worker, whatever the server does.
const MAX_CALLS_PER_WORKER: usize = 20_000;
const WORKER_DEADLINE: Duration = Duration::from_secs(60);
/// Limit on each call, so no call can hang the test.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One Validate call as the client saw it.
struct Call {
    started: Instant,
    finished: Instant,
    outcome: Result<pb::ValidateResult, Failure>,
}

/// A failed call: its status, and whether the client's transport made the
/// status up because the connection failed, rather than the server sending it.
#[derive(Debug)]
struct Failure {
    code: Code,
    message: String,
    from_transport: bool,
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
            // tonic 0.14 keeps the underlying error as the source only when
            // the status comes from the client's own transport, never for a
            // status that the server sent.
            from_transport: std::error::Error::source(&status).is_some(),
        }
    }
}

async fn connect(url: &str) -> Channel {
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .expect("connect to tokend")
}

/// Calls Validate in a loop until the first error, the stop flag, or one of
/// the bounds, and returns every call it made.
async fn validate_loop(
    channel: Channel,
    caller: String,
    tokens: Vec<String>,
    completed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<Call> {
    let mut client = TokenServiceClient::new(channel);
    let mut calls = Vec::new();
    let deadline = Instant::now() + WORKER_DEADLINE;
    for token in tokens.iter().cycle().take(MAX_CALLS_PER_WORKER) {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let request = pb::ValidateRequest {
            token: token.clone(),
            required_scopes: Vec::new(),
        };
        let started = Instant::now();
        let outcome = client
            .validate(authed(&caller, request))
            .await
            .map(|response| response.into_inner().result())
            .map_err(Failure::from);
        let failed = outcome.is_err();
        calls.push(Call {
            started,
            finished: Instant::now(),
            outcome,
        });
        completed.fetch_add(1, Ordering::Relaxed);
        if failed {
            break;
        }
    }
    calls
}

/// Returns whether a failure means the call was refused or its connection
/// went away, so the caller got no response and may retry elsewhere.
fn is_refusal(failure: &Failure) -> bool {
    // REFUSED_STREAM after GOAWAY and a failed reconnect once the listener
    // is closed both map to UNAVAILABLE. A request queued on a connection
    // that closes under it fails in the client with CANCELLED ("operation
    // was canceled") and no status from the server.
    failure.code == Code::Unavailable || failure.from_transport
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_validate_load() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc", &["tokens:validate"]);
    let mut user_ids = Vec::new();
    let mut user_secrets = Vec::new();
    for _ in 0..4 {
        let (id, secret) = admin_create(&database, "alice", &["repo:read"]);
        user_ids.push(id);
        user_secrets.push(secret);
    }
    // With an hourly flush, only the flush at shutdown can write last_used_at.
    let grace = format!("{}s", GRACE.as_secs());
    let mut server = Server::start(
        &database,
        &[
            "--shutdown-grace",
            &grace,
            "--last-used-flush-interval",
            "1h",
        ],
        &[],
    );
    let address: SocketAddr = server.address.parse().unwrap();

    let completed = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let channel = connect(&server.url).await;
        // Each worker starts on a different token, so the load covers every
        // token from the first calls on.
        let mut tokens = user_secrets.clone();
        tokens.rotate_left(worker % user_secrets.len());
        workers.push(tokio::spawn(validate_loop(
            channel,
            service.clone(),
            tokens,
            completed.clone(),
            stop.clone(),
        )));
    }

    let warmup_deadline = Instant::now() + Duration::from_secs(30);
    while completed.load(Ordering::Relaxed) < CALLS_BEFORE_SIGNAL {
        assert!(
            Instant::now() < warmup_deadline,
            "only {} validations completed in 30 s",
            completed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signalled = Instant::now();
    server.send_sigterm();

    // A client that arrives after the signal gets no response from this
    // server: its connection or its call fails, whether the server is still
    // draining or already gone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = Endpoint::from_shared(server.url.clone())
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(2));
    if let Ok(channel) = late.connect().await {
        let request = pb::ValidateRequest {
            token: user_secrets[0].clone(),
            required_scopes: Vec::new(),
        };
        let result = TokenServiceClient::new(channel)
            .validate(authed(&service, request))
            .await;
        assert!(
            result.is_err(),
            "a call on a connection opened after SIGTERM was answered: {result:?}"
        );
    }

    let status = tokio::task::block_in_place(|| server.wait_exit(GRACE + EXIT_MARGIN));
    let exit_time = signalled.elapsed();
    let log = server.log();
    let status = status
        .unwrap_or_else(|| panic!("tokend still runs {exit_time:?} after SIGTERM; log:\n{log}"));
    assert!(
        status.success(),
        "tokend exited with {status:?}; log:\n{log}"
    );
    assert!(
        log.contains("wrote pending last-used times"),
        "no shutdown flush in the log:\n{log}"
    );
    assert!(
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err(),
        "{address} still accepts connections after the exit"
    );

    stop.store(true, Ordering::Relaxed);
    let mut calls = Vec::new();
    for worker in workers {
        calls.extend(worker.await.unwrap());
    }

    let before: Vec<&Call> = calls.iter().filter(|c| c.started < signalled).collect();
    let after: Vec<&Call> = calls.iter().filter(|c| c.started >= signalled).collect();
    let in_flight = before.iter().filter(|c| c.finished > signalled).count();
    eprintln!(
        "{} calls before SIGTERM ({in_flight} in flight at the signal), {} after; exit seen {exit_time:?} after the signal",
        before.len(),
        after.len()
    );
    assert!(before.len() >= CALLS_BEFORE_SIGNAL);
    assert!(in_flight > 0, "no call was in flight when SIGTERM was sent");

    // Every call made before the signal completed with the right result,
    // except one that the client had started but not yet sent. When the
    // server's GOAWAY arrives first, the client fails that request itself,
    // without a response, so the call is safe to retry elsewhere.
    let mut unsent = 0;
    for call in &before {
        match &call.outcome {
            Ok(result) => assert_eq!(
                *result,
                pb::ValidateResult::Valid,
                "a call started {:?} before SIGTERM got a wrong answer",
                signalled - call.started
            ),
            Err(failure) => {
                assert!(
                    failure.from_transport,
                    "a call started {:?} before SIGTERM failed with a status from the server: {failure:?}",
                    signalled - call.started
                );
                unsent += 1;
            }
        }
    }
    // The drain itself: calls that the server was serving when the signal
    // came still returned VALID.
    let drained = before
        .iter()
        .filter(|c| c.finished > signalled && matches!(c.outcome, Ok(pb::ValidateResult::Valid)))
        .count();
    assert!(
        drained > 0,
        "no call in flight at the signal completed ({unsent} failed in the client)"
    );
    // Calls after the signal returned VALID or were refused, and none got a
    // wrong result.
    for call in &after {
        match &call.outcome {
            Ok(result) => assert_eq!(
                *result,
                pb::ValidateResult::Valid,
                "a call {:?} after SIGTERM got a wrong answer",
                call.started - signalled
            ),
            Err(failure) => assert!(
                is_refusal(failure),
                "a call {:?} after SIGTERM failed with {failure:?}, not a refusal",
                call.started - signalled
            ),
        }
    }

    // Restart and check that the shutdown flush wrote every used token.
    let server = Server::start(&database, &[], &[]);
    let tokens = process::list_owner(&server, &admin, "alice");
    for id in &user_ids {
        let token = tokens
            .iter()
            .find(|t| t["id"] == id.as_str())
            .unwrap_or_else(|| panic!("token {id} missing from the listing: {tokens:?}"));
        assert!(
            token["last_used_at"].is_string(),
            "the shutdown flush did not write last_used_at: {token}"
        );
    }
}
