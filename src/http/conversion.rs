//! `GET /pixel` and `GET|POST /postback` on the public listener: the HTTP
//! shapes around [`crate::conversions::intake`].
//!
//! The pixel always answers a 1×1 GIF (a browser shows nothing either
//! way; the outcome goes to the conversions table and metrics). The
//! postback answers JSON: the verdict with `200`, or an error naming the
//! parameter (`400`), `401` for a missing or wrong token or signature, and
//! `503` when the conversion could not be made durable (the merchant
//! retries): never `200` for a conversion that was not recorded.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use serde::Serialize;

use super::{response, Resp};
use crate::conversions::intake::{Channel, Intake, IntakeError, Report, Verdict};
use crate::conversions::params::{self, ParamError, MAX_BODY_BYTES};
use crate::events::money::money_text;

/// A transparent 1×1 GIF.
const GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b,
];

/// The header a signed postback carries.
pub const SIGNATURE_HEADER: &str = "x-trackedge-signature";

#[cfg(test)]
mod tests {
    #[test]
    fn money_has_two_decimals_at_least() {
        for (given, shown) in [
            ("5", "5.00"),
            ("5.00", "5.00"),
            ("12.0000", "12.00"),
            ("12.5", "12.50"),
            ("0.1234", "0.1234"),
            ("0", "0.00"),
            ("1000000", "1000000.00"),
        ] {
            assert_eq!(super::money_text(given.parse().unwrap()), shown, "{given}");
        }
    }
}

#[derive(Serialize)]
struct VerdictBody<'a> {
    status: &'a str,
    reason: &'a str,
    conversion_id: &'a str,
    payout: String,
    currency: &'a str,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn gif() -> Resp {
    let mut r = response(StatusCode::OK, "image/gif", Bytes::from_static(GIF));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON error in the API's one shape, `{"error": {"code", "message",
/// "field"}}`, not cached.
pub(super) fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Resp {
    let body = serde_json::json!({"error": {"code": code, "message": message, "field": field}});
    let mut r = response(
        status,
        "application/json",
        serde_json::to_vec(&body).expect("a json value serializes"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_param(e: &ParamError) -> Resp {
    json_error(
        StatusCode::BAD_REQUEST,
        "invalid",
        &e.message,
        Some(&e.param),
    )
}

fn verdict(v: &Verdict) -> Resp {
    let body = VerdictBody {
        status: v.decision.status.as_str(),
        reason: v.decision.reason.as_str(),
        conversion_id: &v.conversion_id,
        payout: money_text(v.decision.payout),
        currency: &v.currency,
    };
    let mut r = response(
        StatusCode::OK,
        "application/json",
        serde_json::to_vec(&body).expect("the verdict serializes"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The `conversion_errors_total` kind of a refusal.
fn error_kind(e: &IntakeError) -> &'static str {
    match e {
        IntakeError::Unauthorized(_) | IntakeError::NoOffer => "unauthorized",
        IntakeError::RateLimited => "rate_limited",
        IntakeError::Unavailable(_) => "unavailable",
    }
}

fn intake_error(intake: &Intake, e: &IntakeError) -> Resp {
    let message = e.to_string();
    intake.refused(error_kind(e));
    match e {
        IntakeError::Unauthorized(_) => {
            json_error(StatusCode::UNAUTHORIZED, "unauthorized", &message, None)
        }
        IntakeError::NoOffer => json_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            &message,
            Some("token"),
        ),
        IntakeError::RateLimited => json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &message,
            None,
        ),
        IntakeError::Unavailable(_) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &message,
            None,
        ),
    }
}

/// `GET /pixel`: always the GIF.
pub async fn pixel<B>(intake: &Intake, req: &Request<B>, ip: IpAddr) -> Resp {
    let query = req.uri().query().unwrap_or("");
    let parsed = params::from_query(query);
    if parsed.is_err() {
        intake.refused("bad_input");
    }
    if let Ok(p) = parsed {
        let report = Report {
            channel: Channel::Pixel,
            params: p,
            signature: None,
            signed: query.as_bytes(),
            ip,
            now_ms: now_ms(),
        };
        // A pixel over its client's rate is recorded as rejected, so only
        // refusals (counted by the intake) land here.
        if let Err(e) = intake.report(report).await {
            intake.refused(error_kind(&e));
            tracing::debug!(error = %e, "pixel conversion not recorded");
        }
    }
    gif()
}

/// `GET /postback` and `POST /postback`.
pub async fn postback(intake: &Intake, req: Request<hyper::body::Incoming>, ip: IpAddr) -> Resp {
    let signature = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_post = req.method() == hyper::Method::POST;
    let query = req.uri().query().unwrap_or("").to_string();
    let (p, signed) = if is_post {
        // One byte over the limit tells "too large" from "exactly full".
        let body = match Limited::new(req.into_body(), MAX_BODY_BYTES + 1)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                intake.refused("bad_input");
                return bad_param(&ParamError {
                    param: "body".into(),
                    message: format!("must be at most {MAX_BODY_BYTES} bytes, and complete"),
                });
            }
        };
        match params::from_body(content_type.as_deref(), &body) {
            Ok(p) => (p, body),
            Err(e) => {
                intake.refused("bad_input");
                return bad_param(&e);
            }
        }
    } else {
        match params::from_query(&query) {
            Ok(p) => (p, Bytes::from(query.into_bytes())),
            Err(e) => {
                intake.refused("bad_input");
                return bad_param(&e);
            }
        }
    };
    let report = Report {
        channel: Channel::Postback,
        params: p,
        signature: signature.as_deref(),
        signed: &signed,
        ip,
        now_ms: now_ms(),
    };
    match intake.report(report).await {
        Ok(v) => verdict(&v),
        Err(e) => intake_error(intake, &e),
    }
}
