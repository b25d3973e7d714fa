//! The partner API tests' helpers: partners, offers and keys made through
//! the admin API, calls with a partner key, and the two-partner setup the
//! isolation tests share.

use serde_json::{json, Value};

use crate::common::*;

/// Creates a partner; answers its id.
pub async fn partner(server: &Server, name: &str) -> u64 {
    let (s, p) = admin(
        server,
        "POST",
        "/api/v1/partners",
        Some(json!({"name": name, "kind": "affiliate"})),
    )
    .await;
    assert_eq!(s, 201, "{p}");
    p["id"].as_u64().unwrap()
}

/// Creates an offer of `visibility`; answers it.
pub async fn offer(server: &Server, visibility: &str) -> Value {
    let (s, o) = admin(
        server,
        "POST",
        "/api/v1/offers",
        Some(
            json!({"name": "Offer", "url": "https://shop.example.com/?cid={click_id}",
                    "payout": {"model": "cpa", "amount": "5.00"}, "visibility": visibility}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{o}");
    assert_eq!(o["visibility"], visibility);
    o
}

/// A new key of partner `id`; answers its secret.
pub async fn key(server: &Server, id: u64) -> String {
    let (s, k) = admin(
        server,
        "POST",
        &format!("/api/v1/partners/{id}/keys"),
        Some(json!({"label": "test"})),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    assert_eq!(k["partner_id"], id);
    k["key"].as_str().unwrap().to_string()
}

/// Calls the partner API on `server`'s public listener with `key`.
pub async fn papi(
    server: &Server,
    key: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), format!("{}{path}", server.public))
        .header("Authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("?")
}

pub fn field(v: &Value) -> &str {
    v["error"]["field"].as_str().unwrap_or("?")
}

/// Creates a link through the partner API; answers it.
pub async fn plink(server: &Server, key: &str, offer_id: &Value) -> Value {
    let (s, l) = papi(
        server,
        key,
        "POST",
        "/partner/v1/links",
        Some(json!({"offer_id": offer_id})),
    )
    .await;
    assert_eq!(s, 201, "{l}");
    l
}

/// A postback for `cid` on `offer` with `order` and `customer`; asserted
/// approved; answers the conversion id.
pub async fn convert(
    server: &Server,
    offer: &Value,
    cid: &str,
    order: &str,
    customer: &str,
) -> String {
    let resp = client()
        .post(format!("{}/postback", server.public))
        .json(
            &json!({"click_id": cid, "order_id": order, "amount": "20.00",
                      "customer_id": customer, "token": offer["postback_token"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["status"], "approved", "{v}");
    v["conversion_id"].as_str().unwrap().to_string()
}

/// Two partners on one public offer and a private one granted to B only,
/// each partner with a link made through its key; B has a conversion in
/// ClickHouse and a pending deal it registered through its key.
pub struct Two {
    pub a: u64,
    pub a_key: String,
    pub a_link: Value,
    pub b: u64,
    pub b_key: String,
    pub b_link: Value,
    pub b_conversion: String,
    pub b_deal: u64,
    pub public: Value,
    pub private: Value,
}

/// Sets up [`Two`] on `server`, waiting for B's conversion to reach
/// ClickHouse.
pub async fn two_partners(server: &Server) -> Two {
    let a = partner(server, "Ann").await;
    let b = partner(server, "Bob").await;
    let (a_key, b_key) = (key(server, a).await, key(server, b).await);
    let public = offer(server, "public").await;
    let private = offer(server, "private").await;
    let (s, g) = admin(
        server,
        "PUT",
        &format!("/api/v1/offers/{}/access/{b}", private["id"]),
        Some(json!({"status": "approved"})),
    )
    .await;
    assert_eq!(s, 200, "{g}");
    let a_link = plink(server, &a_key, &public["id"]).await;
    let b_link = plink(server, &b_key, &public["id"]).await;
    plink(server, &b_key, &private["id"]).await;
    let cid = click(server, &b_link).await;
    let b_conversion = convert(server, &public, &cid, "B-1", "cust-b").await;
    let (s, deal) = papi(
        server,
        &b_key,
        "POST",
        "/partner/v1/deals",
        Some(
            json!({"offer_id": public["id"], "company": "Bob's prospect",
                     "customer_id": "prospect-b"}),
        ),
    )
    .await;
    assert_eq!((s, &deal["partner_id"]), (201, &json!(b)), "{deal}");
    let b_deal = deal["id"].as_u64().unwrap();
    wait_for_async("b's conversion in clickhouse", || async {
        let (s, _) = admin(
            server,
            "GET",
            &format!("/api/v1/conversions/{b_conversion}"),
            None,
        )
        .await;
        (s == 200).then_some(())
    })
    .await;
    Two {
        a,
        a_key,
        a_link,
        b,
        b_key,
        b_link,
        b_conversion,
        b_deal,
        public,
        private,
    }
}
