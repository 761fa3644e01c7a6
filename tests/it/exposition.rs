//! How `/metrics` is served: gzip by content negotiation, identity otherwise, the same
//! numbers either way.

use std::io::Read;

use crate::helpers::*;

/// GETs `/metrics` with `accept_encoding` (none if `None`), without decompressing; returns the
/// `Content-Encoding` (if any), `Vary`, and the body decoded to text.
async fn scrape_with(
    app: &TestApp,
    accept_encoding: Option<&str>,
) -> (Option<String>, String, String) {
    let http = reqwest::Client::builder()
        .no_gzip()
        .timeout(ANSWER_TIMEOUT)
        .build()
        .unwrap();
    let mut request = http.get(app.url("/metrics"));
    if let Some(value) = accept_encoding {
        request = request.header("accept-encoding", value);
    }
    let response = request.send().await.expect("scrape");
    assert_eq!(response.status(), 200);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let encoding = header("content-encoding");
    let vary = header("vary").unwrap_or_default();
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = response.bytes().await.unwrap();
    let text = if encoding.as_deref() == Some("gzip") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("valid gzip");
        text
    } else {
        String::from_utf8(body.to_vec()).expect("utf-8 text")
    };
    (encoding, vary, text)
}

/// The lines that cannot change between two scrapes with no poll in between.
fn stable_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.contains("process_")).collect()
}

#[tokio::test]
async fn gzip_only_when_accepted() {
    let (_mock, app) = polled_app(fixture("users-documented.json"), &[]).await;
    let (_, _, identity) = scrape_with(&app, None).await;
    for (accept, gzipped) in [
        (None, false),
        (Some("gzip"), true),
        (Some("GZIP;q=0.5"), true),
        (Some("deflate, br, gzip;q=1.0"), true),
        (Some("x-gzip"), true),
        (Some("*"), true),
        (Some("gzip;q=0"), false),
        (Some("gzip;q=0.000"), false),
        (Some("*;q=0"), false),
        (Some("*, gzip;q=0"), false),
        (Some("identity"), false),
        (Some("br, zstd"), false),
    ] {
        let (encoding, vary, text) = scrape_with(&app, accept).await;
        assert_eq!(encoding.as_deref() == Some("gzip"), gzipped, "{accept:?}");
        assert!(
            vary.eq_ignore_ascii_case("accept-encoding"),
            "{accept:?}: {vary}"
        );
        assert_eq!(
            value(&text, "testsigma_users"),
            Some(2.0),
            "{accept:?}: {text}"
        );
        assert!(
            text.contains("process_"),
            "process metrics are served: {text}"
        );
        assert_eq!(stable_lines(&text), stable_lines(&identity), "{accept:?}");
    }
    app.stop().await.expect("clean stop");
}
