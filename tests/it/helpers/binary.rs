//! The compiled exporter binary: runs to completion (`--once`, `--help`, configuration
//! errors) and servers started as a child process, signalled and waited for.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{TestApp, KEY};

/// How long a test waits at most for the binary to start, answer or exit.
pub const BIN_TIMEOUT: Duration = Duration::from_secs(20);

/// Path of the compiled exporter binary.
fn exporter_bin() -> &'static str {
    env!("CARGO_BIN_EXE_testsigma-exporter")
}

/// Variables that change how the binary reaches the API: proxies and the certificate store.
const NETWORK_VARS: [&str; 5] = [
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "SSL_CERT_",
];

/// A command for the exporter binary with `args` and `env`, and none of the caller's
/// `TESTSIGMA_*` variables (so e.g. a developer's own key cannot leak into a test), proxies
/// or `SSL_CERT_*` (a test sets those it wants in `env`).
fn exporter_command(args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(exporter_bin());
    for (name, _) in std::env::vars_os() {
        let upper = name.to_string_lossy().to_ascii_uppercase();
        if upper.starts_with("TESTSIGMA_") || NETWORK_VARS.iter().any(|v| upper.starts_with(v)) {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// What a finished run of the binary left behind.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// Everything the run printed, stdout then stderr.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs the binary to completion (e.g. `--once`, `--help`, a bad flag), within [`BIN_TIMEOUT`].
pub async fn run_exporter(args: &[&str], env: &[(&str, &str)]) -> Finished {
    let child = exporter_command(args, env)
        .spawn()
        .expect("start the binary");
    let out = tokio::time::timeout(BIN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("the binary did not exit within {BIN_TIMEOUT:?}: {args:?}"))
        .expect("wait for the binary");
    Finished {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `testsigma-exporter --once ARGS` with the key in `TESTSIGMA_API_KEY`, run to completion.
pub async fn run_once(args: &[&str]) -> Finished {
    let argv: Vec<&str> = std::iter::once("--once")
        .chain(args.iter().copied())
        .collect();
    run_exporter(&argv, &[("TESTSIGMA_API_KEY", KEY)]).await
}

/// The exporter binary running as a server. Scrape it through `Deref` to [`TestApp`]; it is
/// killed when dropped.
pub struct BinApp {
    app: TestApp,
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl std::ops::Deref for BinApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// Starts the binary with `args` (plus `--web.listen-address 127.0.0.1:0`) and `env`, and
/// waits for it to log the address it listens on.
pub async fn spawn_exporter(args: &[&str], env: &[(&str, &str)]) -> BinApp {
    match try_spawn_exporter(args, env).await {
        Ok(app) => app,
        Err(finished) => panic!(
            "the binary exited with {:?} before it listened; stderr:\n{}",
            finished.code, finished.stderr
        ),
    }
}

/// [`spawn_exporter`], or what the binary left behind when it exited before listening
/// (a configuration it refused at start-up).
pub async fn try_spawn_exporter(args: &[&str], env: &[(&str, &str)]) -> Result<BinApp, Finished> {
    let mut argv = vec!["--web.listen-address", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    let mut child = exporter_command(&argv, env)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the binary");
    let stderr = child.stderr.take().expect("stderr is piped");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (found, address) = oneshot::channel();
    let reader = tokio::spawn({
        let lines = lines.clone();
        async move {
            let mut found = Some(found);
            let mut stderr = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = stderr.next_line().await {
                if let Some(addr) = listen_address(&line) {
                    if let Some(found) = found.take() {
                        let _ = found.send(addr);
                    }
                }
                if std::env::var_os("TEST_LOG").is_some() {
                    eprintln!("exporter: {line}");
                }
                lines.lock().expect("stderr lines").push(line);
            }
        }
    });
    let addr = match tokio::time::timeout(BIN_TIMEOUT, address).await {
        Ok(Ok(addr)) => addr,
        // Its stderr closed before it listened: it exited.
        Ok(Err(_)) => {
            let status = tokio::time::timeout(BIN_TIMEOUT, child.wait())
                .await
                .expect("the binary exits once its stderr is closed")
                .expect("wait for the binary");
            let _ = reader.await;
            let stderr = lines.lock().expect("stderr lines").join("\n");
            return Err(Finished {
                code: status.code(),
                stdout: String::new(),
                stderr,
            });
        }
        Err(_) => {
            let _ = child.start_kill();
            panic!(
                "the binary did not log its listen address; stderr:\n{}",
                lines.lock().expect("stderr lines").join("\n")
            );
        }
    };
    Ok(BinApp {
        app: TestApp::at(addr),
        child,
        stderr: lines,
        reader: Some(reader),
    })
}

/// The address in the "testsigma-exporter listening" log line, in logfmt or JSON.
fn listen_address(line: &str) -> Option<std::net::SocketAddr> {
    if !line.contains("testsigma-exporter listening") {
        return None;
    }
    if line.starts_with('{') {
        let v: Value = serde_json::from_str(line).ok()?;
        return v["address"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("address="))?
        .parse()
        .ok()
}

impl BinApp {
    fn pid(&self) -> i32 {
        self.child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .expect("the binary is running")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the binary.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) takes plain integers; the pid is our own live child.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// Waits for the binary to exit, at most `timeout`; returns its exit code (`None` if a
    /// signal ended it) and all it wrote to stderr.
    pub async fn wait_exit(&mut self, timeout: Duration) -> (Option<i32>, Vec<String>) {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for the binary"),
            Err(_) => {
                let _ = self.child.start_kill();
                panic!(
                    "the binary did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
        };
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(BIN_TIMEOUT, reader).await;
        }
        (status.code(), self.stderr_lines())
    }

    /// Waits for a stderr line that contains `needle`, at most `timeout`; returns the line.
    pub async fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stderr lines so far.
    fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lines").clone()
    }
}
