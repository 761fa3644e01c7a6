//! Shared test helpers, one file per concern; everything is re-exported here, so a test
//! needs only `use crate::helpers::*;`. Set `TEST_LOG=1` to see the exporter's logs.
//!
//! - [`app`]: the exporter in this process (`spawn_app`, `polled_app`, `poll_once`, ...).
//!   Every call into the library crate is made here, save the page decoder that
//!   `fuzz_decode` tests directly.
//! - [`binary`]: the compiled binary (`run_exporter`, `run_once`, `spawn_exporter`, ...).
//! - [`mock_api`]: wiremock stand-ins for the Testsigma API, and the fixtures.
//! - [`raw_server`]: a hand-rolled HTTP server for what wiremock cannot do.
//! - [`tls`]: a throw-away CA and certificates for `--web.config.file` and `--api-ca-file`
//!   tests.
//! - [`network`]: the API behind HTTPS with a private CA, and a CONNECT proxy.
//! - [`exposition`]: reading values out of the `/metrics` text.
//! - [`flood`]: many connections guessing passwords (`password_flood`).

mod app;
mod binary;
mod exposition;
mod flood;
mod mock_api;
mod network;
mod raw_server;
mod tls;

pub use app::*;
pub use binary::*;
pub use exposition::*;
pub use flood::*;
pub use mock_api::*;
pub use network::*;
pub use raw_server::*;
pub use tls::*;

use std::time::{Duration, Instant};

/// Waits until `done` holds, checking every 20 ms, or panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
