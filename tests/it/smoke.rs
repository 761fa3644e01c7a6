//! The basic path: one page in the documented shape, counted and served.

use crate::helpers::*;
use wiremock::matchers::{header, query_param};
use wiremock::MockServer;

#[tokio::test]
async fn documented_page_is_counted_and_served() {
    let mock = MockServer::start().await;
    users_get()
        .and(query_param("page_size", "100"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("accept", "application/json"))
        .and(header(
            "user-agent",
            concat!("testsigma-exporter/", env!("CARGO_PKG_VERSION")),
        ))
        .respond_with(json_ok(fixture("users-documented.json")))
        .expect(1..)
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &[])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(2.0));
    assert_eq!(
        by_status(&text),
        [("active".to_owned(), 1.0), ("inactive".to_owned(), 1.0)]
    );
    assert_eq!(app.get("/readyz").await.0, 200);
    assert_eq!(app.get("/healthz").await.0, 200);
    app.stop().await.expect("clean stop");
}
