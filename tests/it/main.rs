//! Integration tests: the exporter's router, server and binary driven over HTTP against a
//! wiremock stand-in for the Testsigma API. One test binary; shared helpers in `helpers`.

mod chaos;
mod fuzz_decode;
mod helpers;
mod hostile_clients;
mod limits;
mod pacing;
mod retries;
mod secrets;
mod smoke;
