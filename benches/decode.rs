//! Micro-benchmarks of the per-page work of a poll: decoding a page and counting its users.
//! `cargo bench --bench decode`; the end-to-end comparison is scripts/bench.sh.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use secrecy::SecretString;
use testsigma_exporter::api::page;
use testsigma_exporter::census::{Tally, User};

const PAGE_SIZE: usize = 100;
const USERS: usize = 100_000;

/// A deterministic stream of pseudo-random numbers (splitmix64).
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Pages of `USERS` distinct users shaped like the API's (compact JSON, UUID ids, a few
/// statuses in mixed case), each linking to the next by path.
fn pages() -> Vec<Vec<u8>> {
    let statuses = [
        "active", "active", "active", "inactive", "invited", "PENDING", "",
    ];
    let mut mix = Mix(42);
    let pages = USERS / PAGE_SIZE;
    (1..=pages)
        .map(|p| {
            let users: Vec<String> = (0..PAGE_SIZE)
                .map(|i| {
                    let (a, b) = (mix.next(), mix.next());
                    let id = uuid::Uuid::from_u64_pair(a, b);
                    let created = 1_600_000_000 + mix.next() % 100_000_000;
                    let status = statuses[(mix.next() % statuses.len() as u64) as usize];
                    format!(
                        r#"{{"id":"{id}","email":"user.{p}.{i}@example.com","first_name":"Jane","last_name":"Doe","created_at":{created},"updated_at":{created},"status":"{status}"}}"#
                    )
                })
                .collect();
            let next = if p < pages {
                format!("/api/v1/users/p{}.json", p + 1)
            } else {
                String::new()
            };
            format!(
                r#"{{"message":"","data":[{}],"page_info":{{"page_size":{PAGE_SIZE},"total_count":{USERS},"next":"{next}","prev":""}}}}"#,
                users.join(",")
            )
            .into_bytes()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let pages = pages();
    let one = &pages[0];
    let key = SecretString::from("bench-key");

    let mut g = c.benchmark_group("page");
    g.throughput(Throughput::Bytes(one.len() as u64));
    g.bench_function("decode", |b| {
        b.iter(|| {
            let page = page::decode(black_box(one)).unwrap();
            black_box((page.users.len(), page.next.is_some()))
        })
    });
    g.bench_function("decode_and_count", |b| {
        b.iter_batched_ref(
            || {
                let mut tally = Tally::default();
                tally.reserve(PAGE_SIZE);
                tally
            },
            |tally| {
                let page = page::decode(black_box(one)).unwrap();
                for user in &page.users {
                    tally.add(&user.fields(), &key);
                }
                page.total_count
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let ids: Vec<(String, &str)> = pages
        .iter()
        .flat_map(|body| {
            let page = page::decode(body).unwrap();
            page.users
                .into_iter()
                .map(|u| {
                    let active = u.status.as_deref() == Some("active");
                    (
                        u.id.unwrap().into_owned(),
                        if active { "active" } else { "inactive" },
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut g = c.benchmark_group("poll");
    g.sample_size(20);
    g.throughput(Throughput::Elements(USERS as u64));
    g.bench_function("count_100k_ids", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            tally.reserve(USERS);
            for (id, status) in &ids {
                let user = User {
                    id: Some(id),
                    status: Some(status),
                    ..User::default()
                };
                tally.add(&user, &key);
            }
            black_box(tally.finish(SystemTime::now()))
        })
    });
    g.bench_function("decode_and_count_100k_users", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            for body in &pages {
                let page = page::decode(body).unwrap();
                for user in &page.users {
                    tally.add(&user.fields(), &key);
                }
                if let Some(total) = page.total_count {
                    tally.reserve(total as usize);
                }
            }
            black_box(tally.finish(SystemTime::now()))
        })
    });
    g.finish();
}

criterion_group!(decode, benches);
criterion_main!(decode);
