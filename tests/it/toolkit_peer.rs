//! The exporter-toolkit's own test cases run against the binary: a web configuration that
//! works with node_exporter must work here. The YAML files, certificates and keys are the
//! toolkit's (`tests/toolkit/`, with its licence and the commit they come from); the table
//! of cases is in [`cases`], the clients that replay the toolkit's requests in [`probe`].
//!
//! Every case runs, and the test fails listing each one whose outcome is not the expected
//! one. Cases that differ on purpose are expected to be refused clearly, and say why.

mod cases;
// The exporter's P-521 group (its module is private), for the client to offer it; its unit
// tests come along and run here too.
#[path = "../../src/web/p521.rs"]
mod p521;
mod probe;

use std::path::PathBuf;
use std::time::Duration;

use crate::helpers::*;

/// One toolkit test case.
pub struct Case {
    /// The toolkit's test function.
    pub group: &'static str,
    /// The toolkit's name for the case.
    pub name: &'static str,
    /// A file of `tests/toolkit/testdata`; `""`: `--web.config.file ''`; a missing file as is.
    pub config: &'static str,
    pub client: Client,
    /// Requests made, one after the other.
    pub requests: usize,
    /// Basic-auth user and password sent.
    pub users: Option<(&'static str, &'static str)>,
    pub expect: Expect,
    /// Why this case differs from the toolkit on purpose.
    pub differs: Option<&'static str>,
}

/// The toolkit's client for a case.
#[derive(Clone, Copy)]
pub enum Client {
    Plain,
    Tls(TlsClient),
}

/// What the toolkit's TLS client is set to (Go's `tls.Config` of the case).
#[derive(Clone, Copy)]
pub struct TlsClient {
    /// `MaxVersion: tls.VersionTLS11`.
    pub max_tls11: bool,
    /// `CipherSuites` (TLS 1.2 only, as in Go), IANA numbers.
    pub ciphers: &'static [u16],
    /// `CurvePreferences`, IANA group numbers.
    pub curves: &'static [u16],
    /// A certificate and key of `testdata` (`<name>.pem`, `<name>.key`) to present.
    pub identity: Option<&'static str>,
}

/// The outcome expected, in the exporter's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expect {
    /// Every request answered 200.
    Serves,
    /// Served, with this TLS 1.2 cipher suite negotiated.
    Suite(u16),
    /// Refused at start-up, with a message that contains this.
    Refused(&'static str),
    /// A request answered with this status.
    Status(u16),
    /// A plain HTTP request to the TLS listener: a 400 that says so.
    PlainToTls,
    /// A TLS client against the plain listener: no handshake.
    TlsToPlain,
    /// The handshake refused with this TLS alert (rustls' name for it).
    Alert(&'static str),
    /// `TestConfigReloading`: refused while the file requires a verified client
    /// certificate, then (file swapped) served; here the swap is refused as a weakening.
    Reload,
}

/// What a case did.
#[derive(Debug)]
pub enum Outcome {
    Refused(String),
    /// Status and negotiated cipher suite of each request.
    Answered(Vec<(u16, Option<u16>)>),
    PlainToTls,
    Failed(String),
    Reload(String),
}

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/toolkit/testdata")
}

impl Expect {
    fn met_by(&self, outcome: &Outcome) -> bool {
        use Outcome as O;
        match (self, outcome) {
            (Expect::Serves, O::Answered(a)) => a.iter().all(|(s, _)| *s == 200),
            (Expect::Suite(suite), O::Answered(a)) => a
                .iter()
                .all(|(s, negotiated)| *s == 200 && *negotiated == Some(*suite)),
            (Expect::Refused(needle), O::Refused(message)) => message.contains(needle),
            (Expect::Status(status), O::Answered(a)) => a.iter().any(|(s, _)| s == status),
            (Expect::PlainToTls, O::PlainToTls) => true,
            (Expect::TlsToPlain, O::Failed(e)) => e.contains("InvalidContentType"),
            (Expect::Alert(alert), O::Failed(e)) => e.contains(&format!("alert: {alert}")),
            (Expect::Reload, O::Reload(log)) => {
                log.contains("refused, as it would weaken protection")
                    && log.contains("client_auth_type lowered")
            }
            _ => false,
        }
    }
}

/// Runs one case against the binary.
async fn run(case: &Case) -> Outcome {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = match case.config {
        "" => String::new(),
        "somefile" => dir.path().join("somefile").display().to_string(),
        file => {
            // A copy, so that the reload case can rewrite it; the files it names stay
            // where they are, found by the same relative names.
            copy_testdata(dir.path());
            dir.path().join(file).display().to_string()
        }
    };
    let args = ["--demo", "--web.config.file", config.as_str()];
    let app = match try_spawn_exporter(&args, &[]).await {
        Ok(app) => app,
        Err(finished) => return Outcome::Refused(finished.stderr),
    };
    if case.expect == Expect::Reload {
        return reload(case, &app, dir.path()).await;
    }
    let mut answers = Vec::new();
    for _ in 0..case.requests {
        match probe::request(app.addr, &case.client, case.users).await {
            Ok(probe::Answer::PlainToTls) => return Outcome::PlainToTls,
            Ok(probe::Answer::Status(status, suite)) => answers.push((status, suite)),
            Err(e) => return Outcome::Failed(e),
        }
    }
    Outcome::Answered(answers)
}

/// `TestConfigReloading`: the client is refused; the file is swapped for the toolkit's main
/// fixture; the reload must be refused as a weakening, and the client still refused.
async fn reload(case: &Case, app: &BinApp, dir: &std::path::Path) -> Outcome {
    let before = probe::request(app.addr, &case.client, None).await;
    if before.is_ok() {
        return Outcome::Failed("served before the swap".into());
    }
    let good = std::fs::read(dir.join("web_config_noAuth.good.yml")).expect("read fixture");
    write_atomically(&dir.join(case.config), &good);
    let log = app.wait_log("reload", Duration::from_secs(10)).await;
    match probe::request(app.addr, &case.client, None).await {
        Ok(_) => Outcome::Failed(format!("served after the swap; log: {log}")),
        Err(_) => Outcome::Reload(log),
    }
}

fn copy_testdata(to: &std::path::Path) {
    for entry in std::fs::read_dir(testdata()).expect("tests/toolkit/testdata") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy testdata");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toolkit_cases_behave_as_the_toolkit_expects() {
    let mut report = Vec::new();
    let mut failed = Vec::new();
    for case in &cases::CASES {
        let outcome = run(case).await;
        let met = case.expect.met_by(&outcome);
        let status = match (met, case.differs) {
            (true, None) => "as the toolkit",
            (true, Some(_)) => "differs on purpose",
            (false, _) => "UNEXPECTED",
        };
        report.push(format!("{status:>18} | {} / {}", case.group, case.name));
        if !met {
            failed.push(format!(
                "{} / {}: expected {:?}, got {outcome:?}",
                case.group, case.name, case.expect
            ));
        }
    }
    let same = report
        .iter()
        .filter(|l| l.contains("as the toolkit"))
        .count();
    println!(
        "{}\n{same} of {} cases as the toolkit",
        report.join("\n"),
        cases::CASES.len()
    );
    assert!(
        failed.is_empty(),
        "{} cases:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
