//! Runs the real `tokend` binary: a server process and CLI invocations.

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use crate::common::{Engine, TestDatabase, engine};

/// Path of the binary that Cargo built for these tests.
pub const TOKEND: &str = env!("CARGO_BIN_EXE_tokend");

/// Returns the storage flags for the test database: a data directory, and
/// the URL on PostgreSQL. The key file always lives in the data directory.
pub fn storage_flags(database: &TestDatabase) -> Vec<String> {
    let mut flags = vec![
        "--data-dir".to_owned(),
        data_dir(database).display().to_string(),
    ];
    if engine() == Engine::Postgres {
        // An external database needs an explicit key shared by every command.
        let key_file = data_dir(database).join("hashing.key");
        if !key_file.exists() {
            std::fs::write(&key_file, hex::encode(rand::random::<[u8; 32]>())).unwrap();
        }
        flags.push("--database-url".to_owned());
        flags.push(database.url.clone());
        flags.push("--hashing-key-file".to_owned());
        flags.push(key_file.display().to_string());
    }
    flags
}

/// Returns the data directory of the test database.
pub fn data_dir(database: &TestDatabase) -> PathBuf {
    database.dir.path().to_path_buf()
}

/// Reserves a free loopback port. The port is released before the server
/// binds it; on a busy machine another process could take it in between.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tokend serve` process, stopped with SIGTERM on drop.
pub struct Server {
    child: Child,
    pub url: String,
    pub address: String,
    log_path: PathBuf,
}

impl Server {
    /// Starts `tokend serve` and waits until it accepts connections.
    pub fn start(database: &TestDatabase, extra_args: &[&str], envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let log_path = database.dir.path().join(format!("server-{port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();

        let mut command = Command::new(TOKEND);
        command
            .arg("serve")
            .args(["--listen", &address])
            .args(storage_flags(database))
            .args(extra_args)
            .env_remove("RUST_LOG")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        let child = command.spawn().expect("start tokend serve");
        let server = Self {
            child,
            url: format!("http://{address}"),
            address,
            log_path,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.log().contains("tokend listening") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tokend did not start within 30 s; log:\n{}", self.log());
    }

    /// Returns everything the server wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Kills the server with SIGKILL, as a crash or an OOM kill would, and
    /// waits for it to exit.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited 0.
    pub fn stop(mut self) -> bool {
        self.terminate()
    }

    /// Sends SIGTERM and returns at once, so a test can act while the
    /// server drains.
    pub fn send_sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Waits up to `limit` for the process to exit. Returns its status, or
    /// `None` while it still runs.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn terminate(&mut self) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if let Some(status) = self.wait_exit(Duration::from_secs(20)) {
            return status.success();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// Runs `tokend` with `args`, the caller token in `TOKEND_TOKEN`, and optional standard input.
pub fn tokend(args: &[&str], token: Option<&str>, stdin: Option<&str>) -> Output {
    let mut command = Command::new(TOKEND);
    command
        .args(args)
        .env_remove("TOKEND_TOKEN")
        .env_remove("RUST_LOG");
    if let Some(token) = token {
        command.env("TOKEND_TOKEN", token);
    }
    run(command, stdin)
}

/// Runs a command with a bounded time and returns its output.
pub fn run(mut command: Command, stdin: Option<&str>) -> Output {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start a command");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("command timed out after 60 s: {command:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    Output {
        status: child.wait().unwrap(),
        stdout,
        stderr,
    }
}

/// Parses standard output as JSON, failing with both streams shown.
pub fn json(output: &Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "command failed with {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Lists every token of `owner` with `tokend token list --output json`.
pub fn list_owner(server: &Server, caller: &str, owner: &str) -> Vec<serde_json::Value> {
    let listed = json(&tokend(
        &[
            "token",
            "list",
            "--server",
            &server.url,
            "--owner",
            owner,
            "--output",
            "json",
        ],
        Some(caller),
        None,
    ));
    listed["tokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no token array in the listing: {listed}"))
        .clone()
}

/// Creates a token with `tokend admin create-token` and returns (id, secret).
pub fn admin_create(database: &TestDatabase, owner: &str, scopes: &[&str]) -> (String, String) {
    let mut args = vec![
        "admin",
        "create-token",
        "--owner",
        owner,
        "--output",
        "json",
    ];
    for scope in scopes {
        args.extend(["--scope", scope]);
    }
    let flags = storage_flags(database);
    args.extend(flags.iter().map(String::as_str));
    let created = json(&tokend(&args, None, None));
    (
        created["token"]["id"].as_str().unwrap().to_owned(),
        created["secret"].as_str().unwrap().to_owned(),
    )
}

/// Finds grpcurl: `GRPCURL`, then the repository's tool directory, then `PATH`.
pub fn grpcurl() -> PathBuf {
    if let Ok(path) = std::env::var("GRPCURL") {
        return PathBuf::from(path);
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/grpcurl");
    if local.exists() {
        return local;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.exists())
    });
    found.expect("grpcurl not found: run ./scripts/test.sh, which installs it, or set GRPCURL")
}
