//! Catalog writes Redis refuses half-way: nothing changes and nothing is
//! published, so no node applies a change that is not stored.

mod common;

use common::*;
use serde_json::json;

fn redis_conn(server: &Server) -> redis::Connection {
    redis::Client::open(server.config.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Runs `write` with `key` (under the server's prefix) replaced by a string
/// holding no number, so every command on it fails; then puts it back.
async fn with_broken_key<F, Fut>(server: &Server, key: &str, write: F) -> u16
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let key = format!("{}{key}", server.config.prefix);
    let mut conn = redis_conn(server);
    let saved: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let status = write().await;
    let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
    if let Some(bytes) = saved {
        let _: () = redis::cmd("RESTORE")
            .arg(&key)
            .arg(0)
            .arg(bytes)
            .query(&mut conn)
            .unwrap();
    }
    status
}

#[tokio::test]
async fn a_refused_change_or_delete_leaves_everything_as_it_was() {
    let server = Server::start(ServerConfig::new("halfwrite"));
    let link = seed_link(
        &server,
        "https://m.example.com/?c={click_id}",
        Some("Keep1234"),
    )
    .await;
    let partner = link["partner_id"].as_u64().unwrap();
    let link_id = link["id"].as_u64().unwrap();
    let version = |server: &Server| -> u64 {
        let mut conn = redis_conn(server);
        redis::cmd("GET")
            .arg(format!("{}version", server.config.prefix))
            .query(&mut conn)
            .unwrap()
    };
    let before = version(&server);

    // A partner change: its hash, its index, the change counter refused.
    for broken in ["partners", "idx:partners", "version"] {
        let status = with_broken_key(&server, broken, || async {
            admin(
                &server,
                "PATCH",
                &format!("/api/v1/partners/{partner}"),
                Some(json!({"name": "after"})),
            )
            .await
            .0
        })
        .await;
        assert_eq!(status, 503, "{broken}");
        let (_, p) = admin(&server, "GET", &format!("/api/v1/partners/{partner}"), None).await;
        assert_eq!(p["name"], "Partner", "{broken}: {p}");
        assert_eq!(version(&server), before, "{broken}: nothing published");
    }

    // A link delete: its hash, its index, its code, the counter refused.
    for broken in ["links", "idx:links", "codes", "version"] {
        let status = with_broken_key(&server, broken, || async {
            admin(&server, "DELETE", &format!("/api/v1/links/{link_id}"), None)
                .await
                .0
        })
        .await;
        assert_eq!(status, 503, "{broken}");
        assert_eq!(version(&server), before, "{broken}: nothing published");
        let (s, l) = admin(&server, "GET", &format!("/api/v1/links/{link_id}"), None).await;
        assert_eq!((s, l["code"].as_str()), (200, Some("Keep1234")), "{broken}");
        let r = client()
            .get(format!("{}/Keep1234", server.public))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{broken}: the link still redirects");
    }

    // With Redis whole again, both go through and are published.
    let (s, _) = admin(
        &server,
        "PATCH",
        &format!("/api/v1/partners/{partner}"),
        Some(json!({"name": "after"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = admin(&server, "DELETE", &format!("/api/v1/links/{link_id}"), None).await;
    assert_eq!(s, 204);
    assert_eq!(version(&server), before + 2);
}
