//! Integration tests: the exporter's router, server and binary driven over HTTP against a
//! wiremock stand-in for the Testsigma API. One test binary; shared helpers in `helpers`.

mod binary;
mod counting;
mod endpoints;
mod failure;
mod helpers;
mod keyfile;
mod logs;
mod pagination;
mod shutdown;
mod smoke;
mod web_config;
