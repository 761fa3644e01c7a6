//! Bounded work: oversized bodies, and pagination that would never end or would send the key
//! to another origin.

use std::time::Duration;

use crate::helpers::*;
use serde_json::json;
use wiremock::matchers::{any, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn an_endless_body_fails_too_large_and_is_not_read_to_its_end() {
    let server = RawServer::start(|_, _| {
        let mut data = br#"{"data": ["#.to_vec();
        data.resize(MIB, b' ');
        RawReply::Stream {
            head: b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                .to_vec(),
            chunk: chunk(&data),
            every: Duration::ZERO,
            total: 96 * MIB,
        }
    })
    .await;
    let (ok, text) = poll_once(settings(
        &server.base_url(),
        &["--max-retries", "2", "--request-timeout", "20s"],
    ))
    .await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["too_large"], "{text}");
    assert_eq!(server.requests().len(), 1, "too_large is not retried");
    // The client hung up after 32 MiB; the socket buffers took a few MiB more at most.
    let streamed = server.streamed() as usize;
    assert!(
        (32 * MIB..64 * MIB).contains(&streamed),
        "streamed {} MiB",
        streamed / MIB
    );
}

#[tokio::test]
async fn a_declared_length_over_32_mib_fails_before_reading() {
    // The body never comes: reading it would time out instead.
    let server = RawServer::start(|_, _| RawReply::Stream {
        head: format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            40 * MIB
        )
        .into_bytes(),
        chunk: b"{".to_vec(),
        every: Duration::from_secs(60),
        total: 1,
    })
    .await;
    let (ok, text) = poll_once(settings(&server.base_url(), &["--request-timeout", "5s"])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["too_large"], "{text}");
}

#[tokio::test]
async fn a_next_link_that_repeats_ends_the_poll() {
    let mock = MockServer::start().await;
    // New users on every page, but always the same next cursor.
    let arrivals = mount_script(&mock, |n, _| {
        let id = format!("user-{n}");
        ResponseTemplate::new(200).set_body_json(page(&[(&id, "active")], json!("again"), None))
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["pagination"], "{text}");
    assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{text}");
    assert_eq!(arrivals.len(), 2, "the repeated link is not fetched again");
    // The first page, then the one the link named.
    let cursors: Vec<Option<String>> = mock
        .received_requests()
        .await
        .expect("recording")
        .iter()
        .map(|r| {
            r.url
                .query_pairs()
                .find(|(k, _)| k == "cursor")
                .map(|(_, v)| v.into_owned())
        })
        .collect();
    assert_eq!(cursors, [None, Some("again".to_owned())]);
    assert!(!text.contains("testsigma_users"), "{text}");
}

#[tokio::test]
async fn more_than_three_empty_pages_that_link_onwards_end_the_poll() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |n, _| {
        ResponseTemplate::new(200).set_body_json(page(&[], json!(format!("p{}", n + 1)), None))
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["pagination"], "{text}");
    assert_eq!(arrivals.len(), 4);
}

#[tokio::test]
async fn more_pages_than_the_reported_total_can_fill_end_the_poll() {
    let mock = MockServer::start().await;
    // total_count 4 at 2 users a page needs 2 pages; the API links on forever with new users.
    let arrivals = mount_script(&mock, |n, _| {
        let (a, b) = (format!("user-{n}-a"), format!("user-{n}-b"));
        ResponseTemplate::new(200).set_body_json(page(
            &[(&a, "active"), (&b, "active")],
            json!(format!("p{}", n + 1)),
            Some(4),
        ))
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["pagination"], "{text}");
    // Twice the pages needed plus 10 of slack.
    assert_eq!(arrivals.len(), 14);
}

/// A second mock server standing for another origin; it must never be called.
async fn foreign() -> MockServer {
    let foreign = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users-documented.json")))
        .expect(0)
        .named("another origin")
        .mount(&foreign)
        .await;
    foreign
}

#[tokio::test]
async fn a_next_link_to_another_origin_fails_and_nothing_is_sent_there() {
    let foreign = foreign().await;
    let host = foreign.address().to_string();
    for next in [
        // Same host, other port: another origin all the same.
        format!("{}/api/v1/users?page_size=100&page=2", foreign.uri()),
        // Paths the URL parser reads as another host.
        format!("/\\{host}/api/v1/users"),
        format!("/\t/{host}/api/v1/users"),
    ] {
        let mock = mock_api(json_ok(page(&[("user-1", "active")], json!(next), Some(2)))).await;
        let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
        assert!(!ok, "{next:?}");
        assert_eq!(failed_reasons(&text), ["pagination"], "{next:?}: {text}");
        assert_eq!(value(&text, "testsigma_up"), Some(0.0), "{next:?}: {text}");
        assert!(!text.contains("testsigma_users"), "{next:?}: {text}");
        assert_eq!(request_count(&mock).await, 1, "{next:?}");
        assert_eq!(request_count(&foreign).await, 0, "{next:?}");
    }
}

#[tokio::test]
async fn a_next_link_on_the_same_origin_is_followed() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, {
        let uri = mock.uri();
        move |n, _| {
            let next = match n {
                0 => json!(format!("{uri}/api/v1/users?page_size=100&page=2")),
                1 => json!("/api/v1/users?page_size=100&page=3"),
                _ => json!(null),
            };
            let id = format!("user-{n}");
            ResponseTemplate::new(200).set_body_json(page(&[(&id, "active")], next, None))
        }
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(ok, "{text}");
    assert_eq!(arrivals.len(), 3);
    assert_eq!(value(&text, "testsigma_users"), Some(3.0));
}

#[tokio::test]
async fn a_redirect_to_another_origin_is_not_followed() {
    let foreign = foreign().await;
    let mock = MockServer::start().await;
    let location = format!("{}/api/v1/users", foreign.uri());
    users_get()
        .respond_with(ResponseTemplate::new(302).insert_header("location", location.as_str()))
        .expect(1)
        .mount(&mock)
        .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &["--max-retries", "2"])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["http"], "{text}");
    assert_eq!(request_count(&foreign).await, 0);
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed_with_the_key() {
    let mock = MockServer::start().await;
    users_get()
        .respond_with(ResponseTemplate::new(301).insert_header("location", "/api/v2/users"))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/users"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users-documented.json")))
        .expect(1)
        .mount(&mock)
        .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(ok, "{text}");
    assert_eq!(value(&text, "testsigma_users"), Some(2.0));
}

#[tokio::test]
async fn a_redirect_loop_within_the_origin_ends_the_poll() {
    let mock = MockServer::start().await;
    let arrivals = mount_script(&mock, |_, _| {
        ResponseTemplate::new(302).insert_header("location", "/api/v1/users?page_size=100")
    })
    .await;
    let (ok, text) = poll_once(settings(&base_url(&mock), &[])).await;
    assert!(!ok);
    assert_eq!(failed_reasons(&text), ["http"], "{text}");
    // The first request and 5 redirects.
    assert_eq!(arrivals.len(), 6);
}
