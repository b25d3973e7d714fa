//! The catalog in Redis: writes Redis refuses half-way (nothing changes and
//! nothing is published, so no node applies a change that is not stored),
//! a missed change message repaired, a vanity code freed again, and a stored
//! entity that does not decode named.

mod common;

use common::*;
use serde_json::json;

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

#[tokio::test]
async fn a_missed_change_message_is_repaired_by_the_counter_check() {
    let server = Server::start(
        ServerConfig::new("missed").with("TRACKEDGE_REDIS_RESYNC_INTERVAL_SECS", "1"),
    );
    let link = seed_link(&server, "https://m.example.com/", None).await;
    let url = format!("{}/{}", server.public, link["code"].as_str().unwrap());
    assert_eq!(client().get(&url).send().await.unwrap().status(), 302);

    // Pause the link behind every node's back: stored and counted, but the
    // change message is never published.
    let prefix = &server.config.prefix;
    let mut paused = link.clone();
    paused["status"] = json!("paused");
    paused.as_object_mut().unwrap().remove("tracking_url");
    let mut conn = redis::Client::open(server.config.redis_url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}links"))
        .arg(link["id"].as_u64().unwrap())
        .arg(paused.to_string())
        .query(&mut conn)
        .unwrap();
    let _: u64 = redis::cmd("INCR")
        .arg(format!("{prefix}version"))
        .query(&mut conn)
        .unwrap();

    wait_for("the counter check to reload the catalog", || {
        (http_get_blocking(&url).map(|(s, _)| s) == Some(404)).then_some(())
    });
    assert!(
        server.log_text().contains("a change message never arrived"),
        "{}",
        server.log_text()
    );
}

/// A plain Redis connection to `server`'s store.
#[tokio::test]
async fn a_vanity_code_is_free_again_when_its_link_could_not_be_stored() {
    let server = Server::start(ServerConfig::new("reserve"));
    let (s, p) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "P", "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let (s, o) = admin(
        &server,
        "POST",
        "/api/v1/offers",
        Some(json!({"name": "O", "url": "https://m.example.com/", "payout": {"model": "cpa", "amount": "1"}})),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    let body = json!({"partner_id": p["id"], "offer_id": o["id"], "code": "Reserve7"});

    // Each write after the code's reservation refused in turn, by a key
    // holding a string that is no number: the link's JSON (a hash), its
    // index entry (a sorted set), the change number (INCR).
    let prefix = &server.config.prefix;
    let mut conn = redis_conn(&server);
    for broken in ["links", "idx:links", "version"] {
        let key = format!("{prefix}{broken}");
        let saved: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(&mut conn).unwrap();
        let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg("x")
            .query(&mut conn)
            .unwrap();
        let (s, v) = admin(&server, "POST", "/api/v1/links", Some(body.clone())).await;
        assert_eq!(s, 503, "{broken}: {v}");
        let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
        if let Some(bytes) = saved {
            let _: () = redis::cmd("RESTORE")
                .arg(&key)
                .arg(0)
                .arg(bytes)
                .query(&mut conn)
                .unwrap();
        }
        // Nothing of the failed link is left behind.
        let left: (u64, u64, u64) = redis::pipe()
            .cmd("HEXISTS")
            .arg(format!("{prefix}codes"))
            .arg("Reserve7")
            .cmd("EXISTS")
            .arg(format!("{prefix}links"))
            .cmd("EXISTS")
            .arg(format!("{prefix}idx:links"))
            .query(&mut conn)
            .unwrap();
        assert_eq!(left, (0, 0, 0), "{broken}");
    }

    let (s, v) = admin(&server, "POST", "/api/v1/links", Some(body)).await;
    assert_eq!((s, v["code"].clone()), (201, json!("Reserve7")), "{v}");
    let r = client()
        .get(format!("{}/Reserve7", server.public))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn a_stored_entity_that_does_not_decode_is_named() {
    let server = Server::start(ServerConfig::new("corrupt"));
    let link = seed_link(&server, "https://m.example.com/", None).await;
    let (s, p) = admin(
        &server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": "Broken", "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    let id = p["id"].as_u64().unwrap();
    let key = format!("{}partners", server.config.prefix);
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(id)
        .arg(r#"{"id": 2, "name": "#)
        .query(&mut redis_conn(&server))
        .unwrap();

    let (s, v) = admin(&server, "GET", &format!("/api/v1/partners/{id}"), None).await;
    assert_eq!(
        (s, v["error"]["code"].clone()),
        (500, json!("corrupt_entity")),
        "{v}"
    );
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("partner {id}")) && message.contains(&key),
        "{message}"
    );
    // A listing still answers, without it.
    let (s, v) = admin(&server, "GET", "/api/v1/partners", None).await;
    assert_eq!(s, 200, "{v}");
    let ids: Vec<u64> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![link["partner_id"].as_u64().unwrap()]);

    // A node loading the catalog skips it, names it, and routes the rest.
    let other = Server::start(server.config.other_node());
    let r = client()
        .get(format!(
            "{}/{}",
            other.public,
            link["code"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let log = other.log_text();
    assert!(
        log.contains("stored entity does not decode") && log.contains(&key),
        "{log}"
    );
}
