//! The server holds: huge headers, slow clients, many scrapers at once, floods of unknown
//! paths and a hung poll get errors or time-outs, never a crash or a stalled server.

use std::time::Duration;

use crate::helpers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::ResponseTemplate;

fn short_timeouts() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(1),
        ..Limits::default()
    }
}

/// A plain scrape on a new connection.
async fn scrape_status(addr: std::net::SocketAddr) -> u16 {
    scraper()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .status()
        .as_u16()
}

/// Reads until the server closes the connection or `limit` passes; returns what came and
/// whether the server closed it.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (got, closed)
}

#[tokio::test]
async fn a_2_mib_header_is_refused_and_the_server_carries_on() {
    let (addr, _stop) = spawn_server(Limits::default()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = b"GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    request.resize(request.len() + 2 * 1024 * 1024, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    // The server may close before all is written: a broken pipe is a fine answer too.
    let _ = stream.write_all(&request).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(closed, "the connection was not closed");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert_eq!(scrape_status(addr).await, 200);
}

/// The status line of the answer to a GET of `/healthz` with one `x-pad` header that makes
/// the request head `head_bytes` long, or "closed" if the server closed without a word.
async fn status_for_head_of(addr: std::net::SocketAddr, head_bytes: usize) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-pad: ".to_vec();
    let padding = head_bytes - request.len() - 4;
    request.resize(request.len() + padding, b'a');
    request.extend_from_slice(b"\r\n\r\n");
    assert_eq!(request.len(), head_bytes);
    let _ = stream.write_all(&request).await;
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection was not closed");
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or("closed").to_owned()
}

#[tokio::test]
async fn request_heads_are_limited_to_64_kib_as_documented() {
    let (addr, _stop) = spawn_server(Limits::default()).await;
    assert_eq!(status_for_head_of(addr, 64 * 1024).await, "HTTP/1.1 200 OK");
    for head in [64 * 1024 + 1, 100 * 1000, 128 * 1000] {
        let status = status_for_head_of(addr, head).await;
        assert!(
            status == "HTTP/1.1 431 Request Header Fields Too Large" || status == "closed",
            "{head} bytes: {status}"
        );
    }
}

#[tokio::test]
async fn three_hundred_concurrent_scrapes_all_succeed() {
    let (addr, _stop) = spawn_server(Limits::default()).await;
    let mut scrapes = tokio::task::JoinSet::new();
    for _ in 0..300 {
        // A client each, so that each scrape is its own connection.
        scrapes.spawn(scrape_status(addr));
    }
    let mut ok = 0;
    while let Some(status) = scrapes.join_next().await {
        assert_eq!(status.unwrap(), 200);
        ok += 1;
    }
    assert_eq!(ok, 300);
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_while_others_are_served() {
    let (addr, _stop) = spawn_server(short_timeouts()).await;
    let mut slow: Vec<TcpStream> = Vec::new();
    for i in 0..40 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        if i % 2 == 0 {
            // Half trickle a request head; the other half say nothing at all.
            stream.write_all(b"GET /met").await.unwrap();
        }
        slow.push(stream);
    }
    let trickle = {
        tokio::spawn(async move {
            let mut closed = vec![false; slow.len()];
            for _ in 0..30 {
                for (stream, closed) in slow.iter_mut().zip(closed.iter_mut()).step_by(2) {
                    if !*closed && stream.write_all(b"r").await.is_err() {
                        *closed = true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slow
        })
    };
    for _ in 0..10 {
        assert_eq!(scrape_status(addr).await, 200);
    }
    let slow = trickle.await.unwrap();
    // 3 s later every slow connection has been closed by the server.
    for (i, mut stream) in slow.into_iter().enumerate() {
        let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
        assert!(closed, "slow connection {i} still open");
    }
    assert_eq!(scrape_status(addr).await, 200);
}

#[tokio::test]
async fn a_trickled_request_body_does_not_hold_the_connection() {
    let (addr, _stop) = spawn_server(short_timeouts()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000000\r\n\r\n")
        .await
        .unwrap();
    let trickle = tokio::spawn({
        async move {
            for _ in 0..30 {
                if stream.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stream
        }
    });
    assert_eq!(scrape_status(addr).await, 200);
    let mut stream = trickle.await.unwrap();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(closed, "the connection is held open by the trickled body");
}

#[tokio::test]
async fn a_flood_of_unknown_paths_gets_404s() {
    let (addr, _stop) = spawn_server(Limits::default()).await;
    let http = scraper();
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..20 {
        let http = http.clone();
        flood.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..100 {
                let url = format!("http://{addr}/nothing/{worker}/{i}?q={}", "z".repeat(i));
                statuses.push(http.get(url).send().await.unwrap().status().as_u16());
            }
            statuses
        });
    }
    let mut answered = 0;
    while let Some(statuses) = flood.join_next().await {
        for status in statuses.unwrap() {
            assert_eq!(status, 404);
            answered += 1;
        }
    }
    assert_eq!(answered, 2000);
    assert_eq!(scrape_status(addr).await, 200);
    let wrong_method = http
        .delete(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
}

#[tokio::test]
async fn scrapes_answer_while_a_poll_hangs() {
    let mock = mock_api(
        ResponseTemplate::new(200)
            .set_body_json(fixture("users-documented.json"))
            .set_delay(Duration::from_secs(60)),
    )
    .await;
    let app = spawn_app(settings(&base_url(&mock), &["--request-timeout", "120s"])).await;
    wait_for(Duration::from_secs(10), "the poll's request", || async {
        request_count(&mock).await > 0
    })
    .await;
    // The poll is in flight and will be for a minute; the server answers regardless.
    for _ in 0..20 {
        let text = app.scrape().await;
        assert_eq!(polls(&text), 0.0, "the poll is still running");
        assert_eq!(value(&text, "testsigma_up"), Some(0.0));
    }
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 503);
    tokio::time::timeout(Duration::from_secs(5), app.stop())
        .await
        .expect("stop cancels the hung poll")
        .expect("clean stop");
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let (addr, _stop) = spawn_server(short_timeouts()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, then the connection stays open for the next request, but not forever.
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(3)).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(closed, "an idle keep-alive connection is held open");
}

#[tokio::test]
async fn when_silent_clients_take_every_slot_scrapes_wait_for_their_timeout() {
    let (addr, _stop) = spawn_server(Limits {
        max_connections: 4,
        ..short_timeouts()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Queued in the accept backlog until the silent ones time out, then served.
    assert_eq!(scrape_status(addr).await, 200);
    for mut stream in silent {
        let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(2)).await;
        assert!(closed);
    }
}

#[tokio::test]
async fn a_client_that_never_reads_its_answers_loses_its_connection() {
    // One connection slot: while the client holds it, nobody else is served.
    let (addr, _stop) = spawn_server(Limits {
        max_connections: 1,
        ..short_timeouts()
    })
    .await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n".repeat(20_000);
    // Pipelined requests, written as far as the server takes them; nothing is ever read.
    let (_reading, mut writing) = stream.split();
    let written = tokio::time::timeout(Duration::from_secs(5), writing.write_all(&request)).await;
    drop(written);
    // The answers pile up unread until the write deadline closes the connection and frees
    // the slot for a scrape.
    let started = std::time::Instant::now();
    assert_eq!(scrape_status(addr).await, 200);
    eprintln!(
        "a client that never reads was cut off after {:?}",
        started.elapsed()
    );
    drop(stream);
}
