//! Integration tests: the exporter's router, server and binary driven over HTTP against a
//! wiremock stand-in for the Testsigma API. One test binary; shared helpers in `helpers`
//! (see `helpers/mod.rs` for what lives where). Run one module with
//! `cargo test --test it pagination::`.

// Shared helpers.
mod helpers;

// Start here: one page counted and served.
mod smoke;

// Reading the API: page shapes, what is counted, pacing, retries, bounds.
mod counting;
mod fuzz_decode;
mod limits;
mod membership;
mod pacing;
mod pagination;
mod retries;
mod sharing;

// Failures: all-or-nothing polls, random faults, the key file.
mod chaos;
mod failure;
mod keyfile;
mod poll_timeout;

// Serving: endpoints, compression, hostile clients, TLS and basic auth; reaching the API
// through a corporate network (private CAs, proxies).
mod endpoints;
mod exposition;
mod hostile_clients;
mod network;
mod password_flood;
mod toolkit_peer;
mod web_client_certs;
mod web_config;
mod web_http2;
mod web_reload;

// The binary: flags and exit codes, logs, the key kept secret, shutdown on signals.
mod binary;
mod logs;
mod secrets;
mod shutdown;
