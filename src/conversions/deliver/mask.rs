//! Recorded URLs without their secrets: a partner's postback URL often
//! carries its own key, which must not reach `postback_deliveries`.

/// What a masked secret reads as in a recorded URL.
pub const MASKED: &str = "***";

/// Query keys whose values are masked in recorded URLs: exact names, and
/// any key containing one of [`SECRET_PARTS`].
const SECRET_KEYS: &[&str] = &["key", "sig", "auth", "apikey", "api_key", "access_key"];

/// Parts of a query key that mark it as secret.
const SECRET_PARTS: &[&str] = &["token", "secret", "password", "passwd", "signature"];

/// `url` with the values of secret-looking query parameters (`token`,
/// `key`, `secret`, `password`, `sig`, `signature`, ...) and any userinfo
/// password replaced by [`MASKED`]; the rest is kept byte for byte.
pub fn mask_url(url: &str) -> String {
    let (head, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let (base, query) = match head.find('?') {
        Some(i) => (&head[..i], Some(&head[i + 1..])),
        None => (head, None),
    };
    let mut out = mask_userinfo(base);
    if let Some(query) = query {
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && is_secret_key(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(MASKED);
                }
                _ => out.push_str(pair),
            }
        }
    }
    out.push_str(fragment);
    out
}

fn is_secret_key(raw: &str) -> bool {
    let key = percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || SECRET_PARTS.iter().any(|p| key.contains(p))
}

/// `scheme://user:password@host...` with the password masked.
fn mask_userinfo(base: &str) -> String {
    let Some(scheme_end) = base.find("://") else {
        return base.to_string();
    };
    let auth_start = scheme_end + 3;
    let auth_end = base[auth_start..]
        .find('/')
        .map_or(base.len(), |i| auth_start + i);
    let authority = &base[auth_start..auth_end];
    match authority.rfind('@') {
        Some(at) => match authority[..at].split_once(':') {
            Some((user, _)) => format!(
                "{}{user}:{MASKED}{}{}",
                &base[..auth_start],
                &authority[at..],
                &base[auth_end..]
            ),
            None => base.to_string(),
        },
        None => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_mask(url: &str, expected: &str) {
        assert_eq!(mask_url(url), expected, "{url}");
    }

    #[test]
    fn secrets_are_masked_in_recorded_urls() {
        for (url, masked) in [
            (
                "https://p.example/pb?cid=1&token=abc",
                "https://p.example/pb?cid=1&token=***",
            ),
            (
                "https://p.example/pb?Key=k&sig=s&signature=x&api_token=t&client_secret=c&password=p",
                "https://p.example/pb?Key=***&sig=***&signature=***&api_token=***&client_secret=***&password=***",
            ),
            (
                "https://p.example/pb?monkey=1&keyword=2&st=approved",
                "https://p.example/pb?monkey=1&keyword=2&st=approved",
            ),
            ("https://p.example/pb?token=&x", "https://p.example/pb?token=&x"),
            (
                "https://p.example/pb?t%6Fken=abc#frag?token=z",
                "https://p.example/pb?t%6Fken=***#frag?token=z",
            ),
            (
                "https://user:pw@p.example/pb?a=1",
                "https://user:***@p.example/pb?a=1",
            ),
            ("https://user@p.example/", "https://user@p.example/"),
            ("https://p.example", "https://p.example"),
        ] {
            check_mask(url, masked);
        }
    }
}
