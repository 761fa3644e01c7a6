//! Integration tests: the exporter's router, server and binary driven over HTTP against a
//! wiremock stand-in for the Testsigma API. One test binary; shared helpers in `helpers`.

mod binary;
mod chaos;
mod counting;
mod endpoints;
mod exposition;
mod failure;
mod fuzz_decode;
mod helpers;
mod hostile_clients;
mod keyfile;
mod limits;
mod logs;
mod pacing;
mod pagination;
mod retries;
mod secrets;
mod shutdown;
mod smoke;
mod web_config;
