//! testsigma-exporter: a Prometheus exporter for the users of a Testsigma Test Management
//! account.
//!
//! Data flows one way, and no module imports one that imports it back:
//!
//! ```text
//! config -> api (client) -> census -> membership -> metrics -> server
//!             \________________ poller ________________/
//! ```
//!
//! `ids` uses nothing of the crate, `census` only `ids`, `membership` only those two; `api`
//! uses only `census`; `metrics` knows the client only through [`api::Observer`] and
//! [`api::Reason`]; `poller` joins the client to the metrics; `server` reads the metrics and
//! the web configuration.
//!
//! - [`config`] turns the command line and environment into [`Settings`]: clap parses and
//!   range-checks each value, [`Cli::into_settings`] resolves the key's source.
//! - [`api`] is the one client of the Testsigma API: it walks every page of
//!   `GET {base}/users` with pacing (adapted to what the key's rate-limit headers say of
//!   other clients) and retries, decodes each page ([`api::page`]) and counts
//!   its users into a [`census::Tally`]. It tells an [`api::Observer`] about each request and
//!   knows nothing of Prometheus; every error it returns has the key blanked out.
//! - [`census`] is pure counting: de-duplication by id (held at 16 bytes, [`ids`]), status and
//!   email domain normalisation, account age and, in [`census::Tally::finish`], the label
//!   cap; it also hands out the poll's roster (every id with its status).
//! - [`membership`] is pure comparison: a poll's roster against the last one's, into joins,
//!   leaves and status changes.
//! - [`poller`] loads the key, runs a walk within `--poll-timeout` on an interval, finishes the tally into a
//!   [`census::Census`], compares its roster in [`membership`] (logging each change) and
//!   hands both, or the reason the poll failed, to [`metrics`].
//! - [`metrics`] is the one type holding every collector; it swaps a poll's results in at
//!   once, observes the client's requests, and keeps the rendered exposition.
//! - [`server`] binds the listen address and serves `/metrics`, `/healthz`, `/readyz` and `/`
//!   from what was last published, never waiting for the poller.
//! - `web` adds TLS, basic auth and response headers from `--web.config.file`, reloading
//!   the file and its certificates off the serving path when they change, and refusing a
//!   version that would weaken protection.
//! - `demo` is a simulated API on loopback for `--demo`; `files` reads the files others write
//!   (regular files only, bounded), for `web`, the key file and the client's `--api-ca-file`.
//!
//! [`run`] loads the web configuration and wires the parts together until a shutdown
//! signal; [`once`] polls once for `--once`.

pub mod api;
pub mod census;
pub mod config;
mod demo;
mod files;
pub mod ids;
pub mod membership;
pub mod metrics;
pub mod poller;
pub mod server;
mod web;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use config::{Cli, ConfigError, KeySource, LogFormat, LogLevel, Settings};
use metrics::Metrics;
use poller::Poller;
use web::WebConfig;

/// Runs the exporter on `listener` until `shutdown` completes: polls in the background and
/// serves the results. Returns once the server and the poller have stopped. A web
/// configuration that cannot be used is a [`ConfigError`] (as it is for [`once`]).
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let web = load_web_config(&settings)?.map(Arc::new);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let settings = api_target(settings, stopped.clone()).await?;
    let metrics = Metrics::new();
    let poller = new_poller(&settings, metrics.clone())?;
    let mut app = server::router(metrics, &settings.telemetry_path);
    let (mut tls, mut basic_auth) = (false, false);
    if let Some(web) = &web {
        web.watch(stopped.clone());
        app = web::protect(app, web.clone());
        (tls, basic_auth) = (web.tls_enabled(), web.auth_enabled());
        if basic_auth && !tls {
            warn!(
                file = %web.path().display(),
                "basic_auth_users without tls_server_config: passwords travel unencrypted"
            );
        }
    }
    info!(
        address = %listener.local_addr().context("listener has no address")?,
        tls,
        basic_auth,
        telemetry_path = %settings.telemetry_path,
        base_url = %settings.base_url,
        poll_interval = %humantime::format_duration(settings.poll_interval),
        version = env!("CARGO_PKG_VERSION"),
        "testsigma-exporter listening"
    );
    let mut polling = spawn_poller(poller, stopped.clone()).context("cannot start the poller")?;
    let shutting_down = stopped.clone();
    let serving = server::serve(listener, app, web, stopped);
    tokio::pin!(serving);
    tokio::select! {
        () = &mut serving => {
            polling.await.context("the poller stopped abnormally")?;
        }
        // The poller ends only at shutdown; before it, it died (a panic), and serving counts
        // that will never change again would hide that: exit so that a supervisor restarts us.
        ended = &mut polling => {
            if !*shutting_down.borrow() {
                anyhow::bail!("the poller stopped abnormally; exiting so the exporter can be restarted");
            }
            ended.context("the poller stopped abnormally")?;
            serving.await;
        }
    }
    info!("stopped");
    Ok(())
}

/// Runs the poller on a thread of its own with a current-thread runtime, at a lower CPU
/// priority than the server's threads: decoding pages is the only sustained CPU work of the
/// exporter, and a scrape that arrives meanwhile should not queue behind it. The receiver
/// completes when the poller has stopped, and fails if it panicked.
fn spawn_poller(
    poller: Poller,
    stopped: watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, finished) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("poller".to_owned())
        .spawn(move || {
            lower_thread_priority();
            runtime.block_on(poller.run(stopped));
            let _ = done.send(());
        })?;
    Ok(finished)
}

/// Nice 10 for the calling thread (Linux keeps a nice value per thread); elsewhere nothing.
fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority only read and set scheduling attributes of this
        // thread; failure (e.g. a seccomp filter) leaves the priority as it was.
        let failed = unsafe {
            let tid = libc::gettid() as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10) != 0
        };
        if failed {
            debug!("cannot lower the poller's CPU priority; it keeps the default");
        }
    }
}

/// Polls once; returns whether the poll succeeded and the exposition without `process_*`
/// (which would clash with node_exporter's own when used with its textfile collector).
pub async fn once(settings: Settings) -> anyhow::Result<(bool, Vec<u8>)> {
    // Not served, but a file that would not load is a mistake to report all the same.
    load_web_config(&settings)?;
    let (_stop, stopped) = watch::channel(false);
    let settings = api_target(settings, stopped).await?;
    let metrics = Metrics::new();
    let poller = new_poller(&settings, metrics.clone())?;
    let ok = poller.poll().await.is_ok();
    Ok((ok, metrics.encode(false)))
}

/// The poller and its client; an `--api-ca-file` that cannot be used is a [`ConfigError`].
fn new_poller(settings: &Settings, metrics: Metrics) -> anyhow::Result<Poller> {
    Poller::new(settings, metrics).map_err(|e| match e {
        api::ClientError::CaFile(e) => ConfigError::api_ca_file(e).into(),
        e => anyhow::Error::new(e).context("cannot set up the HTTP client"),
    })
}

/// `--web.config.file`, loaded and checked, if given.
fn load_web_config(settings: &Settings) -> Result<Option<WebConfig>, ConfigError> {
    settings
        .web_config_file
        .as_deref()
        .map(|path| WebConfig::load(path).map_err(ConfigError::web_config))
        .transpose()
}

/// The settings pointed at the API to poll: with `--demo`, the simulated one, started here
/// (it stops with `stopped`); otherwise the one configured, with a warning when the key
/// would travel unencrypted.
async fn api_target(
    mut settings: Settings,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<Settings> {
    if settings.demo {
        settings.base_url = demo::start(stopped)
            .await
            .context("cannot start the simulated API for --demo")?;
        settings.key = KeySource::Env(SecretString::from(demo::DEMO_KEY));
        info!(base_url = %settings.base_url, "demo mode: polling a simulated Testsigma API");
    } else {
        warn_if_plain_http(&settings.base_url);
    }
    Ok(settings)
}

fn warn_if_plain_http(url: &url::Url) {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !loopback {
        warn!(
            base_url = %url,
            "--base-url is plain http to a host that is not loopback: the API key travels unencrypted; use https"
        );
    }
}

/// Sets up logging to stderr in the chosen format.
pub fn init_logging(level: LogLevel, format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    // Our own events at the chosen level; the libraries' only from warn up, as their debug
    // output (connection pools, parsers) says nothing an operator can act on.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_target("testsigma_exporter", level)
        .with_default(level.min(tracing::Level::WARN));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .with_span_path(false)
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}
