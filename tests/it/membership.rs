//! Membership across polls (joins, leaves, status changes), account age and email domains,
//! against an account whose users change between polls; label values that stay small and
//! free of the key whatever the API sends; the audit trail in the log.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use wiremock::{MockServer, ResponseTemplate};

use crate::helpers::*;

const JOINED: &str = "testsigma_users_joined_total";
const LEFT: &str = "testsigma_users_left_total";
const CHANGES: &str = "testsigma_users_status_changes_total{";

fn users(list: &[(&str, &str)]) -> Vec<Value> {
    list.iter()
        .map(|(id, status)| json!({"id": id, "status": status, "email": format!("{id}@example.com")}))
        .collect()
}

fn changed(from: &str, to: &str) -> String {
    format!("testsigma_users_status_changes_total{{from=\"{from}\",to=\"{to}\"}}")
}

/// The series of a metric family, as lines.
fn series<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// An account polled by hand with `args`.
async fn polled_account(args: &[&str]) -> (MockServer, Account, HandPoller) {
    let mock = MockServer::start().await;
    let account = Account::mount(&mock).await;
    let poller = HandPoller::new(&settings(&base_url(&mock), args));
    (mock, account, poller)
}

async fn poll_ok(poller: &HandPoller) -> String {
    let (ok, text) = poller.poll().await;
    assert!(ok, "the poll failed:\n{text}");
    text
}

#[tokio::test]
async fn joins_status_changes_and_leaves_between_polls() {
    let (_mock, account, poller) = polled_account(&[]).await;
    // Before the first successful poll, no membership series at all.
    account.answer(ResponseTemplate::new(500));
    let (ok, text) = poller.poll().await;
    assert!(!ok);
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (None, None),
        "{text}"
    );

    // The baseline: the counters appear, at 0. A user without an id is counted, not tracked.
    let mut baseline = users(&[("a", "active"), ("b", "active"), ("c", "invited")]);
    baseline.push(json!({"status": "active"}));
    account.set_users(baseline);
    let text = poll_ok(&poller).await;
    assert_eq!(value(&text, "testsigma_users"), Some(4.0));
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(0.0), Some(0.0)),
        "{text}"
    );
    assert!(series(&text, CHANGES).is_empty(), "{text}");

    // d joins, b is now inactive, a's ACTIVE is the same status, c is missed once.
    account.set_users(users(&[
        ("a", "ACTIVE"),
        ("b", " Inactive"),
        ("d", "invited"),
    ]));
    let text = poll_ok(&poller).await;
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(1.0), Some(0.0)),
        "{text}"
    );
    assert_eq!(
        series(&text, CHANGES),
        [format!("{} 1", changed("active", "inactive"))]
    );

    // A failed poll in between changes nothing.
    account.answer(ResponseTemplate::new(500));
    let (ok, text) = poller.poll().await;
    assert!(!ok);
    assert_eq!(value(&text, "testsigma_users"), Some(3.0), "{text}");
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(1.0), Some(0.0)),
        "{text}"
    );

    // c missing from a second successful poll in a row: it has left.
    account.set_users(users(&[
        ("a", "active"),
        ("b", "inactive"),
        ("d", "invited"),
    ]));
    let text = poll_ok(&poller).await;
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(1.0), Some(1.0)),
        "{text}"
    );
    let text = poll_ok(&poller).await;
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(1.0), Some(1.0)),
        "{text}"
    );
    assert_eq!(value(&text, &changed("active", "inactive")), Some(1.0));
}

#[tokio::test]
async fn a_failed_poll_is_not_a_miss() {
    let (_mock, account, poller) = polled_account(&[]).await;
    account.set_users(users(&[("a", "active"), ("x", "active")]));
    poll_ok(&poller).await;
    // x missed once; then a failed poll, which must not count as its second miss; then x is
    // back: it neither left nor joined. Had the failed poll been a miss, x would have left
    // (and joined on its return).
    account.set_users(users(&[("a", "active")]));
    poll_ok(&poller).await;
    account.answer(ResponseTemplate::new(500));
    assert!(!poller.poll().await.0);
    account.set_users(users(&[("a", "active"), ("x", "active")]));
    let text = poll_ok(&poller).await;
    assert_eq!(
        (value(&text, JOINED), value(&text, LEFT)),
        (Some(0.0), Some(0.0)),
        "{text}"
    );
}

#[tokio::test]
async fn a_user_one_walk_skipped_is_neither_left_nor_joined() {
    let mock = MockServer::start().await;
    // Offset pages: in the second poll a user added before page 2 is fetched shifts b from
    // page 2 back onto page 1, which was already read: that walk never sees b.
    let poll = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = poll.clone();
    mount_script(&mock, move |_, request| {
        let second_page = request.url.query().unwrap_or("").contains("cursor=p2");
        let body = match (seen.load(std::sync::atomic::Ordering::SeqCst), second_page) {
            (1, false) => page(&[("a", "active")], json!("p2"), None),
            (1, true) => page(&[("c", "active")], json!(""), None),
            (_, false) => page(&[("a", "active"), ("b", "active")], json!("p2"), None),
            (_, true) => page(&[("c", "active")], json!(""), None),
        };
        json_ok(body)
    })
    .await;
    let poller = HandPoller::new(&settings(&base_url(&mock), &[]));
    for n in 0..4 {
        poll.store(n, std::sync::atomic::Ordering::SeqCst);
        let text = poll_ok(&poller).await;
        let users = if n == 1 { 2.0 } else { 3.0 };
        assert_eq!(
            value(&text, "testsigma_users"),
            Some(users),
            "poll {n}: {text}"
        );
        assert_eq!(
            (value(&text, JOINED), value(&text, LEFT)),
            (Some(0.0), Some(0.0)),
            "{text}"
        );
    }
}

#[tokio::test]
async fn account_age_from_seconds_and_milliseconds() {
    let (_mock, account, poller) = polled_account(&[]).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let day = 86_400;
    account.set_users(vec![
        json!({"id": "1", "status": "active", "created_at": now - 3600}),
        json!({"id": "2", "status": "active", "created_at": (now - 2 * day) * 1000}),
        json!({"id": "3", "status": "active", "created_at": ((now - 10 * day) * 1000).to_string()}),
        json!({"id": "4", "status": "active", "created_at": now - 40 * day}),
        json!({"id": "5", "status": "active", "created_at": null}),
        json!({"id": "6", "status": "active", "created_at": "last week"}),
        json!({"id": "7", "status": "active"}),
    ]);
    let text = poll_ok(&poller).await;
    let within = |w: &str| {
        value(
            &text,
            &format!("testsigma_users_created_within{{window=\"{w}\"}}"),
        )
    };
    assert_eq!(
        (within("1d"), within("7d"), within("30d")),
        (Some(1.0), Some(2.0), Some(3.0)),
        "{text}"
    );
    assert_eq!(
        value(&text, "testsigma_users_newest_created_timestamp_seconds"),
        Some((now - 3600) as f64)
    );
    // The live API's shape: milliseconds.
    let mut live = fixture("users-cursor-page.json");
    live["page_info"]["next"] = json!("");
    account.answer(json_ok(live));
    let text = poll_ok(&poller).await;
    assert_eq!(
        value(&text, "testsigma_users_newest_created_timestamp_seconds"),
        Some(1_747_660_000.0),
        "{text}"
    );
    // Nobody with a usable date: no newest, and none within any window.
    account.set_users(users(&[("1", "active")]));
    let text = poll_ok(&poller).await;
    assert_eq!(
        value(&text, "testsigma_users_newest_created_timestamp_seconds"),
        None
    );
    assert_eq!(
        value(&text, "testsigma_users_created_within{window=\"30d\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn email_domains_only_when_asked_and_capped() {
    let emails = [
        Some("a@Example.com"),
        Some("b@example.com"),
        Some("c@corp.example"),
        Some("d@corp.example"),
        Some("e@corp.example"),
        Some("f@small.example"),
        None,
        Some("not-an-email"),
        Some("i@a-domain-name-longer-than-sixty-four-bytes-is-no-label-value.example"),
        Some("j@TEST-KEY-0123456789.example"),
    ];
    let list: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(i, email)| json!({"id": i.to_string(), "status": "active", "email": email}))
        .collect();
    let (_mock, account, poller) =
        polled_account(&["--users-by-email-domain", "--max-email-domains", "4"]).await;
    account.set_users(list.clone());
    let text = poll_ok(&poller).await;
    assert_eq!(
        series(&text, "testsigma_users_by_email_domain{"),
        [
            "testsigma_users_by_email_domain{domain=\"corp.example\"} 3",
            "testsigma_users_by_email_domain{domain=\"example.com\"} 2",
            "testsigma_users_by_email_domain{domain=\"other\"} 3",
            "testsigma_users_by_email_domain{domain=\"unknown\"} 2",
        ]
    );
    // A domain nobody has any more is dropped.
    account.set_users(list[..2].to_vec());
    let text = poll_ok(&poller).await;
    assert_eq!(
        series(&text, "testsigma_users_by_email_domain{"),
        ["testsigma_users_by_email_domain{domain=\"example.com\"} 2"]
    );

    let (_mock, account, poller) = polled_account(&[]).await;
    account.set_users(list);
    let text = poll_ok(&poller).await;
    assert!(
        !text.contains("testsigma_users_by_email_domain"),
        "off by default: {text}"
    );
}

#[tokio::test]
async fn the_metrics_stay_small_whatever_the_statuses() {
    let (_mock, account, poller) = polled_account(&[]).await;
    let huge = |i: usize| format!("{i}{}", "x".repeat(1 << 20));
    let mut list: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("big-{i}"), "status": huge(i)}))
        .collect();
    list.extend(
        (0..10_000).map(|i| json!({"id": format!("u{i}"), "status": format!("status-{i}")})),
    );
    account.set_users(list);
    let text = poll_ok(&poller).await;
    assert_eq!(value(&text, "testsigma_users"), Some(10_010.0));
    assert_eq!(series(&text, "testsigma_users_by_status{").len(), 20);
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
    // Every one of them changes status, to another value never seen: still small.
    let mut list: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("big-{i}"), "status": huge(i + 10)}))
        .collect();
    list.extend((0..10_000).map(|i| json!({"id": format!("u{i}"), "status": format!("now-{i}")})));
    account.set_users(list);
    let text = poll_ok(&poller).await;
    assert!(text.len() < 16 * 1024, "{} bytes", text.len());
    let changes = series(&text, CHANGES);
    assert!(changes.len() <= 20, "{changes:?}");
    assert!(text.lines().all(|l| l.len() < 300), "{text}");
}

#[tokio::test]
async fn a_status_or_domain_with_the_key_in_it_is_never_a_label() {
    let (_mock, account, poller) = polled_account(&["--users-by-email-domain"]).await;
    account.set_users(users(&[("a", "active"), ("b", "active"), ("c", "active")]));
    poll_ok(&poller).await;
    let upper = KEY.to_uppercase();
    let within = format!("Revoked {}!", KEY.replace("key", "KEY"));
    account.set_users(vec![
        json!({"id": "a", "status": KEY, "email": format!("a@{KEY}.example")}),
        json!({"id": "b", "status": upper, "email": format!("b@x.{upper}")}),
        json!({"id": "c", "status": within}),
        json!({"id": "d", "status": format!(" {upper} ")}),
    ]);
    let text = poll_ok(&poller).await;
    assert!(!text.to_lowercase().contains(&KEY.to_lowercase()), "{text}");
    assert_eq!(
        value(&text, "testsigma_users_by_status{status=\"other\"}"),
        Some(4.0)
    );
    assert_eq!(
        value(&text, &changed("active", "other")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "testsigma_users_by_email_domain{domain=\"other\"}"),
        Some(2.0)
    );
}

/// A UUID for the n-th user of the log test.
fn uuid(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

#[tokio::test]
async fn each_change_is_logged_with_id_and_statuses_only_fifty_a_poll() {
    let mock = MockServer::start().await;
    mount_script(&mock, |n, _| {
        let mut list = vec![(uuid(0), "active"), (uuid(1), "active")];
        // Poll 1: uuid(1) goes inactive, 3 join, uuid(2) is missed; poll 2: uuid(2) has
        // left; from poll 3 on: 60 more join, more than are logged one by one.
        match n {
            0 => list.push((uuid(2), "invited")),
            _ => list[1].1 = "inactive",
        }
        if n >= 1 {
            list.extend((100..103).map(|i| (uuid(i), "invited")));
        }
        if n >= 3 {
            list.extend((200..260).map(|i| (uuid(i), "invited")));
        }
        let list: Vec<(&str, &str)> = list.iter().map(|(id, s)| (id.as_str(), *s)).collect();
        let mut body = page(&list, json!(""), None);
        for user in body["data"].as_array_mut().expect("users") {
            user["first_name"] = json!("Ottoline");
            user["last_name"] = json!("Quarrington");
        }
        json_ok(body)
    })
    .await;
    // Email domains on, so that emails are decoded: still none of them in the log.
    let app = spawn_exporter(
        &[
            "--base-url",
            &base_url(&mock),
            "--max-request-rate",
            "0",
            "--poll-interval",
            "200ms",
            "--users-by-email-domain",
        ],
        &[("TESTSIGMA_API_KEY", KEY)],
    )
    .await;
    let left = app.wait_log("user left", Duration::from_secs(20)).await;
    assert!(
        left.contains(&uuid(2)) && left.contains("status=invited"),
        "{left}"
    );
    let summary = app
        .wait_log("more membership changes", Duration::from_secs(5))
        .await;
    assert!(
        summary.contains("joined=60") && summary.contains("not_logged=10"),
        "{summary}"
    );
    let mut app = app;
    app.signal(libc::SIGTERM);
    let (_, lines) = app.wait_exit(Duration::from_secs(20)).await;
    let changes: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("user joined") || l.contains("user status changed"))
        .collect();
    assert_eq!(changes.len(), 4 + 50, "{lines:#?}");
    assert!(changes
        .iter()
        .all(|l| l.contains("level=info") && l.contains("id=00000000-")));
    let change = lines
        .iter()
        .find(|l| l.contains("user status changed"))
        .expect("logged");
    assert!(
        change.contains(&uuid(1))
            && change.contains("from=active")
            && change.contains("to=inactive")
    );
    for private in ["@example.com", "Ottoline", "Quarrington"] {
        assert!(
            !lines.iter().any(|l| l.contains(private)),
            "no email or name in the log: {private}"
        );
    }
}

#[tokio::test]
async fn users_by_email_domain_from_the_environment_on_the_binary() {
    let mock = mock_api(json_ok(fixture("users-documented.json"))).await;
    let base = base_url(&mock);
    for (setting, on) in [("1", true), ("0", false), ("true", true), ("false", false)] {
        let run = run_exporter(
            &["--once", "--base-url", &base, "--max-request-rate", "0"],
            &[
                ("TESTSIGMA_API_KEY", KEY),
                ("TESTSIGMA_USERS_BY_EMAIL_DOMAIN", setting),
            ],
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.output());
        let line = "testsigma_users_by_email_domain{domain=\"example.com\"} 2";
        assert_eq!(run.stdout.contains(line), on, "{setting}: {}", run.stdout);
    }
}
