//! Every shape of page and of "next page" the API is known to send is walked to the end, and
//! each page is fetched exactly once. Next links that loop or lead elsewhere are in `limits`.

use serde_json::json;
use std::io::Write;

use wiremock::matchers::{header, query_param, query_param_is_missing};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

/// Page 1 (no `page` parameter) links to `next`; page 2 (`page=2`) ends the walk.
async fn mount_two_pages(mock: &MockServer, next: &str) {
    users_get()
        .and(query_param("page_size", "2"))
        .and(query_param_is_missing("page"))
        .respond_with(json_ok(page(
            &[("u1", "active"), ("u2", "inactive")],
            json!(next),
            Some(3),
        )))
        .expect(1)
        .named("page 1")
        .mount(mock)
        .await;
    users_get()
        .and(query_param("page_size", "2"))
        .and(query_param("page", "2"))
        .respond_with(json_ok(page(&[("u3", "active")], json!(""), Some(3))))
        .expect(1)
        .named("page 2")
        .mount(mock)
        .await;
}

async fn assert_three_users_in_two_pages(mock: &MockServer) {
    let app = spawn_app(settings(&base_url(mock), &["--page-size", "2"])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(3.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(3.0));
    assert_eq!(
        by_status(&text),
        [("active".to_owned(), 2.0), ("inactive".to_owned(), 1.0)]
    );
    app.stop().await.expect("clean stop");
    mock.verify().await;
}

#[tokio::test]
async fn absolute_next_url_on_the_same_origin_is_followed() {
    let mock = MockServer::start().await;
    let next = format!("{}/api/v1/users?page_size=2&page=2", mock.uri());
    mount_two_pages(&mock, &next).await;
    assert_three_users_in_two_pages(&mock).await;
}

#[tokio::test]
async fn next_path_resolves_against_the_api_origin() {
    let mock = MockServer::start().await;
    mount_two_pages(&mock, "/api/v1/users?page_size=2&page=2").await;
    assert_three_users_in_two_pages(&mock).await;
}

#[tokio::test]
async fn cursor_tokens_are_sent_back_with_the_page_size() {
    let mock = MockServer::start().await;
    let first = fixture("users-cursor-page.json");
    let token = first["page_info"]["next"]
        .as_str()
        .expect("fixture has a cursor")
        .to_owned();
    // Characters that must be percent-encoded in a query survive the round trip.
    let token2 = "c2Vjb25k+/==";
    users_get()
        .and(query_param("page_size", "2"))
        .and(query_param_is_missing("cursor"))
        .respond_with(json_ok(first))
        .expect(1)
        .named("first page")
        .mount(&mock)
        .await;
    users_get()
        .and(query_param("page_size", "2"))
        .and(query_param("cursor", token.as_str()))
        .respond_with(json_ok(page(
            &[("c3", "ACTIVE"), ("c4", "Inactive")],
            json!(token2),
            Some(5),
        )))
        .expect(1)
        .named("second page")
        .mount(&mock)
        .await;
    // The last page has no `next` at all.
    users_get()
        .and(query_param("page_size", "2"))
        .and(query_param("cursor", token2))
        .respond_with(json_ok(json!({
            "data": [{"id": "c5", "status": "SUSPENDED", "created_at": 1747650000000u64}],
            "page_info": {"page_size": 2, "total_count": 5}
        })))
        .expect(1)
        .named("third page")
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &["--page-size", "2"])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(5.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(5.0));
    assert_eq!(
        by_status(&text),
        [
            ("active".to_owned(), 2.0),
            ("inactive".to_owned(), 1.0),
            ("invited".to_owned(), 1.0),
            ("suspended".to_owned(), 1.0),
        ]
    );
    assert_eq!(
        value(&text, r#"testsigma_api_requests_total{code="200"}"#),
        Some(3.0)
    );
    app.stop().await.expect("clean stop");
    mock.verify().await;
}

#[tokio::test]
async fn empty_null_or_absent_next_ends_the_walk() {
    for next in [Some(json!("")), Some(json!(null)), Some(json!("   ")), None] {
        let mut body = page(&[("u1", "active"), ("u2", "active")], json!(""), Some(2));
        match &next {
            Some(next) => body["page_info"]["next"] = next.clone(),
            None => {
                body["page_info"]
                    .as_object_mut()
                    .expect("page_info")
                    .remove("next");
            }
        }
        let (mock, app) = polled_app(body, &[]).await;
        let text = app.scrape().await;
        assert_eq!(value(&text, "testsigma_users"), Some(2.0), "next {next:?}");
        // Any second request, whatever its URL, would break the count of 1.
        assert_eq!(request_count(&mock).await, 1, "next {next:?}");
        app.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn bare_array_without_page_info_is_one_page() {
    let (mock, app) = polled_app(fixture("users-bare-array.json"), &[]).await;
    let text = app.scrape().await;
    assert_eq!(request_count(&mock).await, 1);
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    // No page_info, so no reported total.
    assert!(!text.contains("testsigma_users_reported"), "{text}");
    // Upper-case statuses, extra fields and millisecond timestamps are taken in stride.
    assert_eq!(
        by_status(&text),
        [
            ("active".to_owned(), 1.0),
            ("inactive".to_owned(), 0.0),
            ("invited".to_owned(), 1.0),
        ]
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn data_wrapped_in_a_users_object_is_counted() {
    let (mock, app) = polled_app(fixture("users-wrapped.json"), &[]).await;
    let text = app.scrape().await;
    assert_eq!(request_count(&mock).await, 1);
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(2.0));
    assert_eq!(
        by_status(&text),
        [("active".to_owned(), 1.0), ("inactive".to_owned(), 1.0)]
    );
    app.stop().await.expect("clean stop");
}

#[tokio::test]
async fn gzip_is_asked_for_and_a_gzipped_page_is_read() {
    let mock = MockServer::start().await;
    let mut body = fixture("users-cursor-page.json");
    body["page_info"]["next"] = json!(null);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.to_string().as_bytes()).expect("compress");
    users_get()
        .and(header("accept-encoding", "gzip"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_raw(gz.finish().expect("gzip"), "application/json"),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(settings(&base_url(&mock), &[])).await;
    let text = app.wait_polls(1.0).await;
    assert_eq!(value(&text, "testsigma_up"), Some(1.0), "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
    assert_eq!(value(&text, "testsigma_users_reported"), Some(5.0));
    app.stop().await.expect("clean stop");
    mock.verify().await;
}
