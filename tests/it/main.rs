//! Integration tests: the exporter's router, server and binary driven over HTTP against a
//! wiremock stand-in for the Testsigma API. One test binary; shared helpers in `helpers`.

mod exposition;
mod helpers;
mod smoke;
