//! The config's tests: parsing, overrides, validation, and the shipped file.

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_err(toml_text: Option<&str>, pairs: &[(&str, &str)], expected_key: &str) {
    let err = Config::from_parts(toml_text, env(pairs)).unwrap_err();
    assert_eq!(err.key, expected_key, "{err}");
}

#[test]
fn defaults_match_the_interface() {
    let c = Config::from_parts(None, env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
    assert_eq!(c.clickhouse.url, "http://127.0.0.1:8123");
    assert_eq!(c.clickhouse.database, "trackedge");
    assert_eq!(c.spool.dir, PathBuf::from("./data/spool"));
    assert_eq!(c.trusted_proxies.len(), 2);
    assert!(c.secret.is_empty() && c.admin_token.is_empty());
    assert!(c.validate_for_serve().is_err());
}

#[test]
fn interface_env_vars_override_without_a_file() {
    let c = Config::from_parts(
        None,
        env(&[
            ("TRACKEDGE_LISTEN", "0.0.0.0:9000"),
            ("TRACKEDGE_ADMIN_LISTEN", "127.0.0.1:9001"),
            ("TRACKEDGE_REDIS_URL", "redis://10.0.0.1:6380/2"),
            ("TRACKEDGE_CLICKHOUSE_URL", "http://ch:8123"),
            ("TRACKEDGE_CLICKHOUSE_DATABASE", "te_test"),
            ("TRACKEDGE_ADMIN_TOKEN", "tok"),
            ("TRACKEDGE_SECRET", "0123456789abcdef0123"),
            ("TRACKEDGE_SPOOL_DIR", "/var/spool/te"),
            ("TRACKEDGE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.0.0/16"),
            ("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "1000"),
            ("TRACKEDGE_POSTBACKS_ALLOW_PRIVATE_ADDRESSES", "true"),
        ]),
    )
    .unwrap();
    assert!(!Config::default().postbacks.allow_private_addresses);
    assert!(c.postbacks.allow_private_addresses);
    assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9001");
    assert_eq!(c.redis.url, "redis://10.0.0.1:6380/2");
    assert_eq!(c.clickhouse.url, "http://ch:8123");
    assert_eq!(c.clickhouse.database, "te_test");
    assert_eq!(c.admin_token, "tok");
    assert_eq!(c.spool.dir, PathBuf::from("/var/spool/te"));
    assert_eq!(c.trusted_proxies[1].to_string(), "192.168.0.0/16");
    assert_eq!(c.clickhouse.batch_rows, 1000);
    assert!(c.validate_for_serve().is_ok());
}

#[test]
fn env_beats_file_and_file_beats_default() {
    let file =
        "listen = \"127.0.0.1:7000\"\n[clickhouse]\nbatch_rows = 10\nflush_interval_ms = 50\n";
    let c = Config::from_parts(
        Some(file),
        env(&[("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "20")]),
    )
    .unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
    assert_eq!(c.clickhouse.batch_rows, 20);
    assert_eq!(c.clickhouse.flush_interval_ms, 50);
}

#[test]
fn bad_values_name_their_key() {
    check_err(Some("bogus = 1"), &[], "bogus");
    check_err(
        Some("[clickhouse]\nbatchrows = 1"),
        &[],
        "clickhouse.batchrows",
    );
    check_err(None, &[("TRACKEDGE_LISTEN", "nowhere")], "listen");
    // The URL parser would drop the newline; the Location header cannot.
    check_err(
        None,
        &[("TRACKEDGE_FALLBACK_URL", "https://example.com/\nx")],
        "fallback_url",
    );
    check_err(
        None,
        &[("TRACKEDGE_PUBLIC_URL", "https://t.example.com/\tx")],
        "public_url",
    );
    check_err(
        None,
        &[("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "many")],
        "clickhouse.batch_rows",
    );
    check_err(
        None,
        &[("TRACKEDGE_CLICKHOUSE_BATCH_ROWS", "0")],
        "clickhouse.batch_rows",
    );
    check_err(
        None,
        &[("TRACKEDGE_CLICKHOUSE_DATABASE", "a-b")],
        "clickhouse.database",
    );
    check_err(
        None,
        &[("TRACKEDGE_CLICKHOUSE_COMPRESSION", "zstd")],
        "clickhouse.compression",
    );
    check_err(
        None,
        &[("TRACKEDGE_CLICKHOUSE_URL", "ftp://x")],
        "clickhouse.url",
    );
    check_err(None, &[("TRACKEDGE_REDIS_URL", "http://x")], "redis.url");
    check_err(
        None,
        &[("TRACKEDGE_TRUSTED_PROXIES", "10.0.0.0/99")],
        "trusted_proxies[0]",
    );
    check_err(Some("listen = 5"), &[], "listen");
    check_err(
        None,
        &[("TRACKEDGE_SPOOL_SEGMENT_BYTES", "1000")],
        "spool.segment_bytes",
    );
    check_err(
        None,
        &[("TRACKEDGE_SPOOL_SEGMENT_BYTES", "65540")],
        "spool.segment_bytes",
    );
    check_err(
        None,
        &[
            ("TRACKEDGE_SPOOL_SEGMENT_BYTES", "65536"),
            ("TRACKEDGE_SPOOL_MAX_BYTES", "65536"),
        ],
        "spool.max_bytes",
    );
    check_err(
        None,
        &[("TRACKEDGE_ENRICH_AGENT_CACHE_ENTRIES", "0")],
        "enrich.agent_cache_entries",
    );
    check_err(
        None,
        &[("TRACKEDGE_PRIVACY_STORE_IP", "no")],
        "privacy.store_ip",
    );
    check_err(
        None,
        &[("TRACKEDGE_RETENTION_CLICKS_DAYS", "-1")],
        "retention.clicks_days",
    );
    check_err(
        None,
        &[("TRACKEDGE_RETENTION_ORPHAN_HITS_DAYS", "40000")],
        "retention.orphan_hits_days",
    );
}

#[test]
fn analytics_keys_take_their_env_vars() {
    let c = Config::from_parts(
        None,
        env(&[
            ("TRACKEDGE_ENRICH_GEOIP_PATH", "/srv/geo.mmdb"),
            ("TRACKEDGE_PRIVACY_STORE_IP", "false"),
            ("TRACKEDGE_RETENTION_CLICKS_DAYS", "395"),
        ]),
    )
    .unwrap();
    assert_eq!(c.enrich.geoip_path, std::path::Path::new("/srv/geo.mmdb"));
    assert!(!c.privacy.store_ip);
    assert_eq!(c.retention.clicks_days, 395);
    assert_eq!(c.retention.orphan_hits_days, 0);
    let d = Config::default();
    assert!(d.privacy.store_ip, "the IP is kept unless switched off");
    assert_eq!(d.retention.clicks_days, 0, "nothing expires unless asked");
}

#[test]
fn partner_keys_take_their_env_vars() {
    let c = Config::from_parts(
        None,
        env(&[
            ("TRACKEDGE_PARTNERS_AUTO_APPROVE", "referral, reseller"),
            ("TRACKEDGE_PARTNERS_APPLICATIONS_PER_IP_PER_HOUR", "2"),
            ("TRACKEDGE_PARTNERS_ACCEPT_APPLICATIONS", "false"),
        ]),
    )
    .unwrap();
    use crate::model::PartnerKind;
    assert_eq!(
        c.partners.auto_approve,
        [PartnerKind::Referral, PartnerKind::Reseller]
    );
    assert_eq!(c.partners.applications_per_ip_per_hour, 2);
    assert!(!c.partners.accept_applications);
    let d = Config::default();
    assert!(
        d.partners.auto_approve.is_empty(),
        "an admin decides unless asked"
    );
    check_err(
        Some("[partners]\nauto_approve = [\"vendor\"]"),
        &[],
        "partners.auto_approve[0]",
    );
    check_err(
        None,
        &[("TRACKEDGE_PARTNERS_APPLICATIONS_BURST", "0")],
        "partners.applications_burst",
    );
}

#[test]
fn spool_sizes_are_the_logs_bounds() {
    // (segment_bytes, max_bytes, the key refused)
    let cases = [
        ("4096", "8192", None),
        ("16777216", "10737418240", None),
        ("4095", "8192", Some("spool.segment_bytes")),
        ("2147483648", "4294967296", Some("spool.segment_bytes")),
        ("4096", "8191", Some("spool.max_bytes")),
        ("4096", "1125899906842625", Some("spool.max_bytes")),
    ];
    for (segment, max, refused) in cases {
        let pairs = [
            ("TRACKEDGE_SPOOL_SEGMENT_BYTES", segment),
            ("TRACKEDGE_SPOOL_MAX_BYTES", max),
        ];
        let got = Config::from_parts(None, env(&pairs));
        let key = got.as_ref().err().map(|e| e.key.as_str());
        assert_eq!(key, refused, "segment_bytes {segment}, max_bytes {max}");
        if let Err(e) = got {
            assert!(e.problem.starts_with("must be "), "{e}");
        }
    }
}

#[test]
fn spool_larger_than_its_volume_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.spool.dir = dir.path().to_path_buf();
    c.spool.max_bytes = 1 << 20;
    assert!(c.check_spool_volume().is_ok());
    c.spool.max_bytes = 1 << 60;
    assert_eq!(c.check_spool_volume().unwrap_err().key, "spool.max_bytes");
    c.spool.dir = dir.path().join("missing");
    assert_eq!(c.check_spool_volume().unwrap_err().key, "spool.dir");
}

#[test]
fn any_free_port_for_both_listeners() {
    let c = Config::from_parts(
        None,
        env(&[
            ("TRACKEDGE_LISTEN", "127.0.0.1:0"),
            ("TRACKEDGE_ADMIN_LISTEN", "127.0.0.1:0"),
        ]),
    )
    .unwrap();
    let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
    assert_eq!(c.public_base(bound), "http://127.0.0.1:41234");
    check_err(
        None,
        &[
            ("TRACKEDGE_LISTEN", "127.0.0.1:9000"),
            ("TRACKEDGE_ADMIN_LISTEN", "127.0.0.1:9000"),
        ],
        "admin_listen",
    );
    let c = Config::from_parts(
        None,
        env(&[("TRACKEDGE_PUBLIC_URL", "https://go.example/")]),
    )
    .unwrap();
    assert_eq!(c.public_base(bound), "https://go.example");
}

#[test]
fn fallback_location_is_the_configured_url() {
    let c = Config::from_parts(
        None,
        env(&[("TRACKEDGE_FALLBACK_URL", "https://example.com/lost?x=1")]),
    )
    .unwrap();
    let loc = c.fallback_location().unwrap().unwrap();
    assert_eq!(loc.to_str().unwrap(), "https://example.com/lost?x=1");
    assert_eq!(Config::default().fallback_location().unwrap(), None);
}

#[test]
fn short_secret_is_refused_for_serve() {
    let c = Config::from_parts(None, env(&[("TRACKEDGE_SECRET", "short")])).unwrap();
    assert_eq!(c.validate_for_serve().unwrap_err().key, "secret");
}

#[test]
fn masked_output_hides_secrets() {
    let c = Config::from_parts(
        None,
        env(&[
            ("TRACKEDGE_SECRET", "supersecretvalue123"),
            ("TRACKEDGE_ADMIN_TOKEN", "admintoken"),
            ("TRACKEDGE_REDIS_URL", "redis://user:hunter2@h:6379"),
        ]),
    )
    .unwrap();
    let out = c.masked_toml();
    assert!(!out.contains("supersecretvalue123"));
    assert!(!out.contains("admintoken"));
    assert!(!out.contains("hunter2"));
    assert!(out.contains("********"));
}

/// `config/trackedge.toml` against the built-in defaults.
mod file {
    use super::*;

    /// `config/trackedge.toml` documents every key with its default: it must
    /// parse and equal the built-in defaults exactly.
    #[test]
    fn shipped_file_lists_the_defaults() {
        let text = include_str!("../../config/trackedge.toml");
        let from_file = Config::from_parts(Some(text), Vec::new()).unwrap();
        assert_eq!(from_file.masked_toml(), Config::default().masked_toml());
        let keys_in_file = text
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .count();
        let keys_in_default = Config::default()
            .masked_toml()
            .lines()
            .filter(|l| l.contains(" = "))
            .count();
        assert_eq!(
            keys_in_file, keys_in_default,
            "every key is in the shipped file"
        );
    }
}

/// `[tiers]` levels as tables in the file or as text in the environment,
/// and bad ones refused naming the key.
mod tiers {
    use super::*;

    #[test]
    fn levels_from_a_file_or_the_environment() {
        let text = "[tiers]\n[[tiers.levels]]\nname = \"gold\"\nmetric = \"conversions\"\nthreshold = \"50\"\nwindow_days = 90\n";
        let c = Config::from_parts(Some(text), Vec::new()).unwrap();
        assert_eq!(c.tiers.levels.len(), 1);
        assert_eq!(c.tiers.levels[0].name, "gold");
        assert_eq!(c.tiers.windows(), vec![90]);
        let env = vec![(
            "TRACKEDGE_TIERS_LEVELS".to_string(),
            "silver:conversions:10:30, gold:revenue:2500.00:90".to_string(),
        )];
        let c = Config::from_parts(None, env).unwrap();
        assert_eq!(c.tiers.levels.len(), 2);
        assert_eq!(c.tiers.levels[1].threshold.to_string(), "2500.00");
        assert_eq!(c.tiers.windows(), vec![30, 90]);
        for (value, key) in [
            ("gold:conversions:50", "tiers.levels"),
            ("gold:sales:50:90", "tiers.levels"),
            ("gold:conversions:0:90", "tiers.levels[0].threshold"),
            ("gold:conversions:5:0", "tiers.levels[0].window_days"),
            ("a:conversions:5:9,a:payout:5:9", "tiers.levels[1].name"),
        ] {
            let env = vec![("TRACKEDGE_TIERS_LEVELS".to_string(), value.to_string())];
            let e = Config::from_parts(None, env).expect_err(value);
            assert!(e.key.starts_with(key), "{value}: {e}");
        }
    }
}

/// `[[tiers.bonuses]]` as tables in the file or as text in the
/// environment, and bad ones refused naming the key.
mod bonuses {
    use super::*;

    #[test]
    fn bonuses_from_a_file_or_the_environment() {
        let text = "[tiers]\n[[tiers.bonuses]]\nname = \"big_month\"\nmetric = \"conversions\"\n\
                    threshold = \"100\"\nperiod = \"month\"\namount = \"500.00\"\ncurrency = \"USD\"\n";
        let c = Config::from_parts(Some(text), Vec::new()).unwrap();
        assert_eq!(c.tiers.bonuses.len(), 1);
        assert_eq!(c.tiers.bonuses[0].amount.to_string(), "500.00");
        assert!(c.tiers.any_rules());
        let env = vec![(
            "TRACKEDGE_TIERS_BONUSES".to_string(),
            "big_month:conversions:100:month:500.00:USD, top_q:revenue:50000:quarter:1000:EUR"
                .to_string(),
        )];
        let c = Config::from_parts(None, env).unwrap();
        assert_eq!(c.tiers.bonuses.len(), 2);
        assert_eq!(c.tiers.bonuses[1].currency, "EUR");
        assert!(!Config::default().tiers.any_rules());
        for (value, key) in [
            ("big_month:conversions:100:month:500.00", "tiers.bonuses"),
            ("big_month:conversions:100:year:500.00:USD", "tiers.bonuses"),
            (
                "big month:conversions:100:month:500.00:USD",
                "tiers.bonuses[0].name",
            ),
            (
                "big_month:conversions:0:month:500.00:USD",
                "tiers.bonuses[0].threshold",
            ),
            (
                "big_month:conversions:100:month:0:USD",
                "tiers.bonuses[0].amount",
            ),
            (
                "big_month:conversions:100:month:1.00001:USD",
                "tiers.bonuses[0].amount",
            ),
            (
                "big_month:conversions:100:month:5:XYZ",
                "tiers.bonuses[0].currency",
            ),
            (
                "a:conversions:1:week:5:USD,a:payout:5:month:5:USD",
                "tiers.bonuses[1].name",
            ),
        ] {
            let env = vec![("TRACKEDGE_TIERS_BONUSES".to_string(), value.to_string())];
            let e = Config::from_parts(None, env).expect_err(value);
            assert!(e.key.starts_with(key), "{value}: {e}");
        }
    }
}
