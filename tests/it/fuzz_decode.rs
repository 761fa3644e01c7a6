//! Property tests of the page decoder: it never panics, whatever the bytes or the JSON, and
//! reads every well-formed page exactly. More cases, in release mode:
//! `PROPTEST_CASES=200000 cargo test --release --test it fuzz_decode`.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use testsigma_exporter::api::page::decode;

/// Any JSON value, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".*".prop_map(Value::String),
        // The keys the decoder looks for, as values too.
        prop::sample::select(vec!["data", "users", "id", "status", "next", "page_info"])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Object keys: mostly the ones the decoder reads, so that the interesting paths are taken.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "data", "users", "page_info", "next", "total_count", "id", "status", "message",
            "email", "created_at",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,8}",
    ]
}

/// A user as the API might send it, with what the decoder should read from it: `email` and
/// `created_at` of any shape never fail the page.
fn user() -> impl Strategy<Value = (Value, Option<String>, Option<String>)> {
    let id = prop_oneof![
        Just(None),
        ".{0,40}".prop_map(|s| Some((json!(s), s))),
        any::<u64>().prop_map(|n| Some((json!(n), n.to_string()))),
        any::<i64>().prop_map(|n| Some((json!(n), n.to_string()))),
    ];
    let status = prop_oneof![
        Just(None),
        Just(Some((Value::Null, None))),
        ".{0,20}".prop_map(|s| Some((json!(s), Some(s)))),
    ];
    let extra = prop::option::of((any_json(), any_json()));
    (id, status, extra).prop_map(|(id, status, extra)| {
        let mut user = Map::new();
        if let Some((email, created_at)) = extra {
            user.insert("email".into(), email);
            user.insert("created_at".into(), created_at);
        }
        let id = id.map(|(v, s)| {
            user.insert("id".into(), v);
            s
        });
        let status = status.and_then(|(v, s)| {
            user.insert("status".into(), v);
            s
        });
        (Value::Object(user), id, status)
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let _ = decode(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn arbitrary_json_in_a_page_shape_never_panics(
        data in any_json(),
        info in any_json(),
        wrap in any::<bool>(),
    ) {
        let data = if wrap { json!({"users": data}) } else { data };
        let _ = decode(&serde_json::to_vec(&json!({"data": data, "page_info": info})).unwrap());
    }

    #[test]
    fn mangled_pages_never_panic(
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let mut body = br#"{"message":"","data":[{"id":"5f9a82b6-4e79-4162-9da6-7a3c2e5f4183","status":"ACTIVE"},{"id":7,"status":null}],"page_info":{"next":"W3siZmllbGQiOiAi","total_count":2}}"#.to_vec();
        for (at, byte) in flips {
            let at = at.index(body.len());
            body[at] = byte;
        }
        body.truncate(cut.index(body.len() + 1));
        let _ = decode(&body);
    }

    #[test]
    fn well_formed_pages_are_read_exactly(
        users in prop::collection::vec(user(), 0..20),
        next in prop_oneof![
            Just(None),
            Just(Some(Value::Null)),
            Just(Some(json!(""))),
            Just(Some(json!("   "))),
            "[A-Za-z0-9+/=]{1,40}".prop_map(|s| Some(json!(s))),
        ],
        total in prop::option::of(any::<u64>()),
        wrap in any::<bool>(),
        with_info in any::<bool>(),
    ) {
        let data: Vec<Value> = users.iter().map(|(v, _, _)| v.clone()).collect();
        let data = if wrap { json!({"users": data, "total": 1}) } else { json!(data) };
        let mut body = json!({"message": "", "data": data});
        let mut expected_next = None;
        let mut expected_total = None;
        if with_info {
            let mut info = Map::new();
            if let Some(next) = &next {
                info.insert("next".into(), next.clone());
                expected_next = next.as_str().filter(|s| !s.trim().is_empty()).map(str::to_owned);
            }
            if let Some(total) = total {
                info.insert("total_count".into(), json!(total));
                expected_total = Some(total);
            }
            body["page_info"] = Value::Object(info);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let page = decode(&bytes).unwrap();
        let read: Vec<(Option<String>, Option<String>)> = page
            .users
            .iter()
            .map(|u| {
                (
                    u.id.as_deref().map(str::to_owned),
                    u.status.as_deref().map(str::to_owned),
                )
            })
            .collect();
        let expected: Vec<(Option<String>, Option<String>)> =
            users.into_iter().map(|(_, id, status)| (id, status)).collect();
        prop_assert_eq!(read, expected);
        prop_assert_eq!(page.next.map(|n| n.into_owned()), expected_next);
        prop_assert_eq!(page.total_count, expected_total);
    }
}
