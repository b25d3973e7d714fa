//! The outbound side: the HTTP client of postbacks and one call with it.
//!
//! Calls follow no redirects, use no proxy, have a timeout, and by default
//! refuse every address that is not public ([`is_forbidden`]). The check
//! is made on the address connected to: IP literals before the call,
//! names in the client's resolver, which hands the connector only
//! addresses it has checked, so a name cannot resolve to a public address
//! for the check and a private one for the call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::address::is_forbidden;
use super::now_ms;
use super::settings::Settings;

/// The header of a JSON postback's signature.
pub const SIGNATURE_HEADER: &str = "X-Trackedge-Signature";

/// Why the HTTP client could not be built (TLS set-up).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the postback http client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// The HTTP client of postbacks: no redirects, no proxy, the timeout, and
/// the address check in its resolver. Built at start, so a TLS set-up
/// problem stops `serve` before anything is served.
pub fn client(settings: &Settings) -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would connect on our behalf, past the address check.
        .no_proxy()
        .timeout(settings.timeout)
        .user_agent(concat!("trackedge-postback/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver {
            allow_private: settings.allow_private_addresses,
        }))
        .build()?)
}

/// One call to a partner.
pub(super) struct Request {
    /// Rendered, secrets included.
    pub(super) url: String,
    /// `None`: a GET; else a signed JSON POST.
    pub(super) json: Option<SignedBody>,
}

/// A JSON postback's body and the key its signature is made with (at the
/// call, so its time is the call's).
pub(super) struct SignedBody {
    pub(super) body: String,
    pub(super) secret: String,
}

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CallResult {
    /// An HTTP answer with this status.
    Answered(u16),
    /// No answer (connection, timeout, TLS): worth another try.
    NoAnswer(String),
    /// The address is not public and private ones are not allowed.
    Refused(String),
}

/// The client and the address rule it calls under.
pub(super) struct Outbound {
    client: reqwest::Client,
    /// Whether IP literals that are not public may be called (names are
    /// checked in the client's resolver, which knows the same).
    allow_private: bool,
}

impl Outbound {
    /// Calls through `client` (see [`client`]), refusing non-public IP
    /// literals unless `allow_private`.
    pub(super) fn new(client: reqwest::Client, allow_private: bool) -> Outbound {
        Outbound {
            client,
            allow_private,
        }
    }

    /// Makes `request`: a GET, or a POST of its JSON body signed now.
    pub(super) async fn call(&self, request: &Request) -> CallResult {
        let url = match url::Url::parse(&request.url) {
            Ok(u) => u,
            Err(e) => return CallResult::Refused(format!("invalid url: {e}")),
        };
        if !self.allow_private {
            let literal = match url.host() {
                Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
                Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
                _ => None,
            };
            if let Some(ip) = literal.filter(|ip| is_forbidden(*ip)) {
                return CallResult::Refused(refusal(ip));
            }
        }
        let call = match &request.json {
            None => self.client.get(url),
            Some(signed) => {
                let t = (now_ms() / 1000) as i64;
                let signature =
                    crate::conversions::auth::sign(&signed.secret, t, signed.body.as_bytes());
                self.client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .body(signed.body.clone())
            }
        };
        match call.send().await {
            Ok(resp) => CallResult::Answered(resp.status().as_u16()),
            Err(e) => {
                let mut source: Option<&dyn std::error::Error> = Some(&e);
                while let Some(s) = source {
                    if let Some(r) = s.downcast_ref::<Refused>() {
                        return CallResult::Refused(r.to_string());
                    }
                    source = s.source();
                }
                CallResult::NoAnswer(describe(&e))
            }
        }
    }
}

/// A reqwest error without its URL (which may hold secrets), with causes.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    match parts.last() {
        Some(cause) => cause.clone(),
        None => "no answer".into(),
    }
}

fn refusal(ip: IpAddr) -> String {
    format!("refused: {ip} is not a public address")
}

/// A name resolved to an address postbacks may not call.
#[derive(Debug, thiserror::Error)]
#[error("refused: {host} resolves to {ip}, not a public address")]
struct Refused {
    host: String,
    ip: IpAddr,
}

/// Resolves names for the postback client and refuses any name with a
/// non-public address among its answers; the connector then only sees
/// addresses checked here.
struct CheckedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| is_forbidden(a.ip())) {
                    return Err(Box::new(Refused { host, ip: bad.ip() })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PostbacksConfig;

    #[tokio::test]
    async fn the_client_builds_with_tls() {
        assert!(client(&Settings::from(&PostbacksConfig::default())).is_ok());
    }
}
