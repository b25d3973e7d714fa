//! Who may report a conversion for an offer: the offer's postback token,
//! or a timestamped HMAC signature by the offer's signing secret, and, when
//! the offer has one, its IP allowlist as well.
//!
//! The signature header is `X-Trackedge-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256>` over `"<t>.<raw body>"` (for `GET`: `"<t>.<raw query>"`),
//! accepted within ±300 s of the server's clock so a captured request
//! cannot be replayed later. Secrets are compared in constant time (the
//! MAC's own verification, or `subtle` for tokens).

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use ipnet::IpNet;
use sha2::Sha256;

/// How far a signature's timestamp may be from the server's clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// What a request presents to authenticate.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The `token` parameter.
    pub token: Option<&'a str>,
    /// The `X-Trackedge-Signature` header.
    pub signature: Option<&'a str>,
    /// What the signature covers after `"<t>."`: the raw body, or the raw
    /// query of a `GET`.
    pub signed: &'a [u8],
    /// The client's address (after trusted proxies).
    pub ip: IpAddr,
}

/// What an offer accepts.
#[derive(Debug, Clone, Copy)]
pub struct OfferSecrets<'a> {
    /// The offer's postback token.
    pub token: &'a str,
    /// The offer's signing secret; empty: signatures are not accepted.
    pub signing_secret: &'a str,
    /// Addresses allowed to post; empty: any.
    pub allowlist: &'a [IpNet],
}

/// Why a request is not authenticated (each answers `401`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Neither a token nor a signature.
    #[error("missing token or X-Trackedge-Signature")]
    Missing,
    /// The token is not the offer's.
    #[error("wrong token")]
    WrongToken,
    /// The header is not `t=<seconds>,v1=<hex>`.
    #[error("malformed X-Trackedge-Signature: expected t=<unix seconds>,v1=<hex hmac-sha256>")]
    MalformedSignature,
    /// The timestamp is too far from now.
    #[error("X-Trackedge-Signature timestamp is more than 300 s from the server's clock")]
    StaleSignature,
    /// The MAC does not match.
    #[error("wrong X-Trackedge-Signature")]
    WrongSignature,
    /// The client's address is not on the offer's allowlist.
    #[error("{0} is not on the offer's allowlist")]
    NotAllowed(IpAddr),
}

/// Checks `creds` against `offer` at `now` (unix seconds). A signature,
/// when present, must be right even if a token is also given.
pub fn authenticate(
    creds: &Credentials<'_>,
    offer: &OfferSecrets<'_>,
    now: i64,
) -> Result<(), AuthError> {
    if !offer.allowlist.is_empty() && !offer.allowlist.iter().any(|n| n.contains(&creds.ip)) {
        return Err(AuthError::NotAllowed(creds.ip));
    }
    if let Some(header) = creds.signature {
        return verify_signature(header, creds.signed, offer.signing_secret, now);
    }
    match creds.token {
        None => Err(AuthError::Missing),
        Some(t) if token_matches(t, offer.token) => Ok(()),
        Some(_) => Err(AuthError::WrongToken),
    }
}

/// Constant-time token comparison (an empty offer token matches nothing).
pub fn token_matches(given: &str, expected: &str) -> bool {
    crate::secret::matches(given, expected)
}

/// Checks a `t=<seconds>,v1=<hex>` header over `"<t>." + signed`.
pub fn verify_signature(
    header: &str,
    signed: &[u8],
    secret: &str,
    now: i64,
) -> Result<(), AuthError> {
    let (mut t, mut v1) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) if t.is_none() => t = Some(v),
            Some(("v1", v)) if v1.is_none() => v1 = Some(v),
            // Later schemes (v2=...) may be added beside v1.
            Some((k, _)) if k != "t" && k != "v1" => {}
            _ => return Err(AuthError::MalformedSignature),
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return Err(AuthError::MalformedSignature);
    };
    let ts: i64 = t.parse().map_err(|_| AuthError::MalformedSignature)?;
    let mac_given = decode_hex(v1).ok_or(AuthError::MalformedSignature)?;
    if (now - ts).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err(AuthError::StaleSignature);
    }
    if secret.is_empty() {
        return Err(AuthError::WrongSignature);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(signed);
    mac.verify_slice(&mac_given)
        .map_err(|_| AuthError::WrongSignature)
}

/// The header value a sender computes (for tests, docs and partner
/// webhooks): `t=<ts>,v1=<hex>`.
pub fn sign(secret: &str, ts: i64, signed: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(signed);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={ts},v1={hex}")
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000;
    const SECRET: &str = "whsec-0123456789";
    const BODY: &[u8] = br#"{"order_id":"A1","amount":"19.90"}"#;

    fn check(
        token: Option<&str>,
        signature: Option<&str>,
        ip: &str,
        allowlist: &[&str],
        expected: Result<(), AuthError>,
    ) {
        let allowlist: Vec<IpNet> = allowlist.iter().map(|n| n.parse().unwrap()).collect();
        let creds = Credentials {
            token,
            signature,
            signed: BODY,
            ip: ip.parse().unwrap(),
        };
        let offer = OfferSecrets {
            token: "tok-abc",
            signing_secret: SECRET,
            allowlist: &allowlist,
        };
        assert_eq!(
            authenticate(&creds, &offer, NOW),
            expected,
            "{token:?} {signature:?} {ip}"
        );
    }

    #[test]
    fn tokens_signatures_and_allowlists() {
        let good = sign(SECRET, NOW, BODY);
        let late = sign(SECRET, NOW - 301, BODY);
        let edge = sign(SECRET, NOW + 300, BODY);
        let other_key = sign("another-secret", NOW, BODY);
        let other_body = sign(SECRET, NOW, b"{}");
        let flipped = {
            let mut s = good.clone();
            let last = s.pop().unwrap();
            s.push(if last == '0' { '1' } else { '0' });
            s
        };
        let ip = "203.0.113.7";
        check(Some("tok-abc"), None, ip, &[], Ok(()));
        check(Some("tok-abd"), None, ip, &[], Err(AuthError::WrongToken));
        check(Some("tok-ab"), None, ip, &[], Err(AuthError::WrongToken));
        check(Some(""), None, ip, &[], Err(AuthError::WrongToken));
        check(None, None, ip, &[], Err(AuthError::Missing));
        check(None, Some(&good), ip, &[], Ok(()));
        check(None, Some(&edge), ip, &[], Ok(()));
        check(None, Some(&late), ip, &[], Err(AuthError::StaleSignature));
        check(
            None,
            Some(&other_key),
            ip,
            &[],
            Err(AuthError::WrongSignature),
        );
        check(
            None,
            Some(&other_body),
            ip,
            &[],
            Err(AuthError::WrongSignature),
        );
        check(
            None,
            Some(&flipped),
            ip,
            &[],
            Err(AuthError::WrongSignature),
        );
        // A wrong signature is not rescued by a right token.
        check(
            Some("tok-abc"),
            Some(&flipped),
            ip,
            &[],
            Err(AuthError::WrongSignature),
        );
        check(
            None,
            Some("v1=abc"),
            ip,
            &[],
            Err(AuthError::MalformedSignature),
        );
        check(
            None,
            Some("t=x,v1=00"),
            ip,
            &[],
            Err(AuthError::MalformedSignature),
        );
        check(
            None,
            Some(&format!("t={NOW},v1=zz")),
            ip,
            &[],
            Err(AuthError::MalformedSignature),
        );
        check(
            None,
            Some(&format!("{good},t=1")),
            ip,
            &[],
            Err(AuthError::MalformedSignature),
        );
        check(None, Some(&format!("{good},v2=abc")), ip, &[], Ok(()));
        check(None, Some(""), ip, &[], Err(AuthError::MalformedSignature));
        // The allowlist comes on top of the token or signature.
        check(Some("tok-abc"), None, ip, &["203.0.113.0/24"], Ok(()));
        check(
            Some("tok-abc"),
            None,
            "2001:db8::1",
            &["203.0.113.0/24", "2001:db8::/32"],
            Ok(()),
        );
        check(
            Some("tok-abc"),
            None,
            "198.51.100.1",
            &["203.0.113.0/24"],
            Err(AuthError::NotAllowed("198.51.100.1".parse().unwrap())),
        );
    }

    #[test]
    fn an_offer_without_a_signing_secret_refuses_signatures() {
        let creds = Credentials {
            token: None,
            signature: Some(&sign("", NOW, BODY)),
            signed: BODY,
            ip: "127.0.0.1".parse().unwrap(),
        };
        let offer = OfferSecrets {
            token: "t",
            signing_secret: "",
            allowlist: &[],
        };
        assert_eq!(
            authenticate(&creds, &offer, NOW),
            Err(AuthError::WrongSignature)
        );
    }
}
