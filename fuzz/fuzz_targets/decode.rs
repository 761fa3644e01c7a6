//! Fuzzes the page decoder with arbitrary bodies: it must never panic, and what it reads
//! must be usable as the client uses it. Run from the repository root:
//! `cargo +nightly fuzz run decode fuzz/corpus/decode fuzz/seeds/decode`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use testsigma_exporter::api::page::{decode, excerpt};

fuzz_target!(|body: &[u8]| {
    if let Ok(page) = decode(body) {
        for user in &page.users {
            let _ = user.id.as_deref().map(str::len);
            let _ = user.status.as_deref().map(|s| s.trim().to_lowercase());
        }
        let _ = page.next.as_deref().map(str::trim);
    }
    // 120 characters and an ellipsis, each escaped in at most 10, and quotes.
    assert!(excerpt(&String::from_utf8_lossy(body)).chars().count() <= 121 * 10 + 2);
});
