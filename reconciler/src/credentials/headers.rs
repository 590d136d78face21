//! The header rewrite of the credential proxy: which key a client presented, and the headers
//! that go upstream (the client's own minus hop-by-hop ones, its key and its encoding wishes,
//! plus the real credential in the form its kind needs). Pure.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::upstream::Upstream;
use super::{Credential, Kind};

/// The beta flag Anthropic requires with an OAuth bearer token.
const OAUTH_BETA: &str = "oauth-2025-04-20";

/// The key a client presented: `x-api-key`, else an `Authorization: Bearer` token.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The client's headers minus hop-by-hop ones, its key and its encoding wishes (responses
/// come back uncompressed so they can be scrubbed), plus the real credential.
pub fn forwarded_headers(
    incoming: &HeaderMap,
    upstream: &Upstream,
    credential: &Credential,
) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers);
    for name in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::AUTHORIZATION,
        header::ACCEPT_ENCODING,
        HeaderName::from_static("x-api-key"),
    ] {
        headers.remove(name);
    }
    if let Ok(host) = HeaderValue::from_str(&upstream.authority()) {
        headers.insert(header::HOST, host);
    }
    let secret = credential.secret.expose();
    match credential.kind {
        Kind::ApiKey => {
            if let Ok(mut value) = HeaderValue::from_str(secret) {
                value.set_sensitive(true);
                headers.insert(HeaderName::from_static("x-api-key"), value);
            }
        }
        Kind::OauthToken => {
            if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {secret}")) {
                value.set_sensitive(true);
                headers.insert(header::AUTHORIZATION, value);
            }
            let beta = HeaderName::from_static("anthropic-beta");
            let betas = headers
                .get(&beta)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string();
            if !betas.split(',').any(|flag| flag.trim() == OAUTH_BETA) {
                let joined = if betas.is_empty() {
                    OAUTH_BETA.to_string()
                } else {
                    format!("{betas},{OAUTH_BETA}")
                };
                if let Ok(value) = HeaderValue::from_str(&joined) {
                    headers.insert(beta, value);
                }
            }
        }
    }
    headers
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_placeholder_is_swapped_for_an_api_key() {
        let upstream = Upstream::parse("http://127.0.0.1:9").unwrap();
        let credential = Credential {
            kind: Kind::ApiKey,
            secret: Secret::new("sk-real"),
        };
        let incoming = headers(&[
            ("x-api-key", "nanoclaw-placeholder-1"),
            ("anthropic-version", "2023-06-01"),
            ("connection", "keep-alive, x-drop"),
            ("x-drop", "1"),
            ("accept-encoding", "gzip"),
            ("host", "127.0.0.1:4000"),
        ]);
        let out = forwarded_headers(&incoming, &upstream, &credential);
        assert_eq!(out["x-api-key"], "sk-real");
        assert_eq!(out["anthropic-version"], "2023-06-01");
        assert_eq!(out["host"], "127.0.0.1:9");
        for gone in ["connection", "x-drop", "accept-encoding", "authorization"] {
            assert!(!out.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn an_oauth_token_goes_as_bearer_with_its_beta_flag() {
        let upstream = Upstream::parse("http://127.0.0.1:9").unwrap();
        let credential = Credential {
            kind: Kind::OauthToken,
            secret: Secret::new("sk-ant-oat01-real"),
        };
        let out = forwarded_headers(
            &headers(&[
                ("x-api-key", "nanoclaw-placeholder-1"),
                ("anthropic-beta", "claude-code-20250219"),
            ]),
            &upstream,
            &credential,
        );
        assert_eq!(out["authorization"], "Bearer sk-ant-oat01-real");
        assert!(!out.contains_key("x-api-key"));
        assert_eq!(
            out["anthropic-beta"],
            "claude-code-20250219,oauth-2025-04-20"
        );
        let again = forwarded_headers(
            &headers(&[
                ("authorization", "Bearer nanoclaw-placeholder-1"),
                ("anthropic-beta", "oauth-2025-04-20,x"),
            ]),
            &upstream,
            &credential,
        );
        assert_eq!(again["anthropic-beta"], "oauth-2025-04-20,x");
    }

    #[test]
    fn both_header_forms_present_a_key() {
        assert_eq!(presented_key(&headers(&[("x-api-key", "a")])), Some("a"));
        assert_eq!(
            presented_key(&headers(&[("authorization", "Bearer b")])),
            Some("b")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "Basic c")])),
            None
        );
    }
}
