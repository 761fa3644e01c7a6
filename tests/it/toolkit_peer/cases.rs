//! The exporter-toolkit's own test cases (`web/tls_config_test.go`: `TestYAMLFiles`,
//! `TestServerBehaviour`, `TestUsers`, `TestConfigReloading`), one row each, in its order and
//! with its names. `expect` is what the toolkit expects, put in our terms; a row whose
//! behaviour differs on purpose says why in `differs`, and `expect` is then what we do.

use super::{Case, Client, Expect, TlsClient};

const TLS: TlsClient = TlsClient {
    max_tls11: false,
    ciphers: &[],
    curves: &[],
    identity: None,
};
const RSA_128_GCM: u16 = 0xc02f;
const RSA_256_GCM: u16 = 0xc030;
const RSA_256_CBC: u16 = 0xc014;
const P384: u16 = 24;
const P521: u16 = 25;

const fn case(group: &'static str, name: &'static str, config: &'static str) -> Case {
    Case {
        group,
        name,
        config,
        client: Client::Plain,
        requests: 1,
        users: None,
        expect: Expect::Serves,
        differs: None,
    }
}

const fn yaml(name: &'static str, config: &'static str, refused: &'static str) -> Case {
    let mut c = case("TestYAMLFiles", name, config);
    c.expect = if refused.is_empty() {
        Expect::Serves
    } else {
        Expect::Refused(refused)
    };
    c
}

const fn server(name: &'static str, config: &'static str, client: Client, expect: Expect) -> Case {
    let mut c = case("TestServerBehaviour", name, config);
    c.client = client;
    c.expect = expect;
    c
}

const fn tls(ciphers: &'static [u16], curves: &'static [u16]) -> Client {
    Client::Tls(TlsClient {
        ciphers,
        curves,
        ..TLS
    })
}

const fn with_cert(identity: &'static str) -> Client {
    Client::Tls(TlsClient {
        identity: Some(identity),
        ..TLS
    })
}

const fn users(
    name: &'static str,
    config: &'static str,
    tls: bool,
    user: Option<(&'static str, &'static str)>,
    expect: Expect,
) -> Case {
    let mut c = case("TestUsers", name, config);
    c.client = if tls { Client::Tls(TLS) } else { Client::Plain };
    c.users = user;
    c.expect = expect;
    c
}

const REQUIRE_ANY: &str = "RequireAnyClientCert accepts client certificates nobody verified: \
    refused at start-up by design (README, \"TLS and basic auth\")";

pub const CASES: [Case; 53] = [
    yaml("path to config yml invalid", "somefile", "No such file"),
    yaml("empty config yml", "web_config_empty.yml", ""),
    yaml("invalid config yml (invalid structure)", "web_config_junk.yml", "invalid type"),
    yaml("invalid config yml (invalid key)", "web_config_junk_key.yml", "unknown field `cert_filse`"),
    yaml("invalid config yml (cert path empty)", "web_config_noAuth_certPath_empty.bad.yml", "missing one of cert or cert_file"),
    yaml("invalid config yml (cert empty)", "web_config_noAuth_cert_empty.bad.yml", "missing one of cert or cert_file"),
    yaml("invalid config yml (key path empty)", "web_config_noAuth_keyPath_empty.bad.yml", "missing one of key or key_file"),
    yaml("invalid config yml (key empty)", "web_config_noAuth_key_empty.bad.yml", "missing one of key or key_file"),
    yaml("invalid config yml (cert path and key path empty)", "web_config_noAuth_certPath_keyPath_empty.bad.yml", "missing one of cert or cert_file"),
    yaml("invalid config yml (cert path invalid)", "web_config_noAuth_certPath_invalid.bad.yml", "No such file"),
    yaml("invalid config yml (key path invalid)", "web_config_noAuth_keyPath_invalid.bad.yml", "No such file"),
    yaml("invalid config yml (cert path and key path invalid)", "web_config_noAuth_certPath_keyPath_invalid.bad.yml", "No such file"),
    yaml("invalid config yml (invalid ClientAuth)", "web_config_noAuth.bad.yml", "client CA is set but client_auth_type is NoClientCert"),
    yaml("invalid config yml (invalid ClientCAs filepath)", "web_config_auth_clientCAs_invalid.bad.yml", "client CA is set but client_auth_type is NoClientCert"),
    yaml("invalid config yml (invalid user list)", "web_config_auth_user_list_invalid.bad.yml", "is not a bcrypt hash"),
    yaml("invalid config yml (bad cipher)", "web_config_noAuth_inventedCiphers.bad.yml", "unknown cipher TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048"),
    yaml("invalid config yml (bad curves)", "web_config_noAuth_inventedCurves.bad.yml", "unknown curve CurveP257"),
    yaml("invalid config yml (bad TLS version)", "web_config_noAuth_wrongTLSVersion.bad.yml", "\"TLS111\" is not one of"),
    server("empty string YAMLConfigPath and default client", "", Client::Plain, Expect::Serves),
    server("empty string YAMLConfigPath and TLS client", "", Client::Tls(TLS), Expect::TlsToPlain),
    server("valid tls config yml and default client", "web_config_noAuth.good.yml", Client::Plain, Expect::PlainToTls),
    server("valid tls config yml and tls client", "web_config_noAuth.good.yml", Client::Tls(TLS), Expect::Serves),
    server("valid tls config yml (cert and key inline) and tls client", "web_config_noAuth_tlsInline.good.yml", Client::Tls(TLS), Expect::Serves),
    server("valid tls config yml with TLS 1.1 client", "web_config_noAuth.good.yml", Client::Tls(TlsClient { max_tls11: true, ..TLS }), Expect::Alert("ProtocolVersion")),
    server("valid tls config yml with all ciphers", "web_config_noAuth_allCiphers.good.yml", Client::Tls(TLS), Expect::Serves),
    server("valid tls config yml with some ciphers", "web_config_noAuth_someCiphers.good.yml", tls(&[RSA_128_GCM], &[]), Expect::Serves),
    server("valid tls config yml with no common cipher", "web_config_noAuth_someCiphers.good.yml", tls(&[RSA_256_CBC], &[]), Expect::Alert("HandshakeFailure")),
    server("valid tls config yml with multiple client ciphers", "web_config_noAuth_someCiphers.good.yml", tls(&[RSA_128_GCM, RSA_256_GCM], &[]), Expect::Suite(RSA_128_GCM)),
    server("valid tls config yml with multiple client ciphers, client chooses cipher", "web_config_noAuth_someCiphers_noOrder.good.yml", tls(&[RSA_128_GCM, RSA_256_GCM], &[]), Expect::Suite(RSA_128_GCM)),
    server("valid tls config yml with all curves", "web_config_noAuth_allCurves.good.yml", Client::Tls(TLS), Expect::Serves),
    server("valid tls config yml with some curves", "web_config_noAuth_someCurves.good.yml", tls(&[], &[P521]), Expect::Serves),
    server("valid tls config yml with no common curves", "web_config_noAuth_someCurves.good.yml", tls(&[], &[P384]), Expect::Alert("HandshakeFailure")),
    server("valid tls config yml with non-http2 ciphers", "web_config_noAuth_noHTTP2.good.yml", Client::Tls(TLS), Expect::Serves),
    server("valid tls config yml with non-http2 ciphers but http2 enabled", "web_config_noAuth_noHTTP2Cipher.bad.yml", Client::Tls(TLS), Expect::Refused("HTTP/2 requires")),
    server("valid headers config", "web_config_headers.good.yml", Client::Plain, Expect::Serves),
    server("invalid X-Content-Type-Options headers config", "web_config_headers_content_type_options.bad.yml", Client::Plain, Expect::Refused("X-Content-Type-Options must be one of nosniff")),
    server("invalid X-Frame-Options headers config", "web_config_headers_frame_options.bad.yml", Client::Plain, Expect::Refused("X-Frame-Options must be one of deny, sameorigin")),
    server("HTTP header that can not be overridden", "web_config_headers_extra_header.bad.yml", Client::Plain, Expect::Refused("\"Content-Type\" can not be configured")),
    Case {
        differs: Some(REQUIRE_ANY),
        ..server("valid tls config yml and tls client with RequireAnyClientCert (present certificate)", "tls_config_noAuth.requireanyclientcert.good.yml", with_cert("client_selfsigned"), Expect::Refused("RequireAnyClientCert is not supported"))
    },
    Case {
        differs: Some(REQUIRE_ANY),
        ..server("valid tls config yml (cert from file, key inline) and tls client with RequireAnyClientCert (present certificate)", "tls_config_noAuth.requireanyclientcert.good.yml", with_cert("client_selfsigned"), Expect::Refused("RequireAnyClientCert is not supported"))
    },
    server("valid tls config yml and tls client with RequireAndVerifyClientCert (present certificate)", "tls_config_noAuth.requireandverifyclientcert.good.yml", with_cert("client_selfsigned"), Expect::Serves),
    server("valid tls config yml and tls client with VerifyPeerCertificate (present good SAN DNS entry)", "web_config_auth_client_san.good.yaml", with_cert("client2_selfsigned"), Expect::Serves),
    server("valid tls config yml and tls client with VerifyPeerCertificate (present invalid SAN DNS entries)", "web_config_auth_client_san.bad.yaml", with_cert("client2_selfsigned"), Expect::Alert("BadCertificate")),
    Case {
        requests: 11,
        ..server("valid rate limiter (no rate limiter set up) that doesn't block", "web_config_rate_limiter_nonblocking.yaml", Client::Plain, Expect::Serves)
    },
    Case {
        requests: 11,
        ..server("valid rate limiter with an interval of one second", "web_config_rate_limiter_one_second.yaml", Client::Plain, Expect::Status(429))
    },
    users("without basic auth", "web_config_users_noTLS.good.yml", false, None, Expect::Status(401)),
    users("with correct basic auth", "web_config_users_noTLS.good.yml", false, Some(("dave", "dave123")), Expect::Serves),
    users("without basic auth and TLS", "web_config_users.good.yml", true, None, Expect::Status(401)),
    users("with correct basic auth and TLS", "web_config_users.good.yml", true, Some(("dave", "dave123")), Expect::Serves),
    users("with another correct basic auth and TLS", "web_config_users.good.yml", true, Some(("carol", "carol123")), Expect::Serves),
    users("with bad password and TLS", "web_config_users.good.yml", true, Some(("dave", "bad")), Expect::Status(401)),
    users("with bad username and TLS", "web_config_users.good.yml", true, Some(("nonexistent", "nonexistent")), Expect::Status(401)),
    Case {
        group: "TestConfigReloading",
        client: Client::Tls(TLS),
        expect: Expect::Reload,
        differs: Some("the toolkit serves after the file is swapped from RequireAndVerifyClientCert to \
            VerifyClientCertIfGiven; here a reload that lowers client_auth_type is refused as a \
            weakening (README, \"Reloading\") and a restart applies it"),
        ..case("TestConfigReloading", "TestConfigReloading", "web_config_noAuth.good.blocking.yml")
    },
];
