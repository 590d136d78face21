//! The connection from the proxy to the Anthropic API (or, in tests, a fake on loopback):
//! `NANOCLAW_ANTHROPIC_BASE_URL`, default `https://api.anthropic.com`.
//!
//! One HTTP/1.1 connection per proxied request, over TCP and, for `https`, rustls with the
//! Mozilla roots compiled in (webpki-roots): the daemon does not depend on the host's CA files.
//! A TLS handshake per request costs tens of milliseconds against model calls of seconds; a pool
//! can come later without changing callers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// Anthropic's API, used when `NANOCLAW_ANTHROPIC_BASE_URL` is unset.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// How long a TCP connect plus TLS handshake may take before the request fails as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed upstream base URL and, for `https`, its TLS client.
#[derive(Clone)]
pub struct Upstream {
    url: String,
    host: String,
    port: u16,
    /// Path prefix of the base URL without a trailing `/` (usually empty).
    base_path: String,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("url", &self.url).finish()
    }
}

/// Why a request could not be sent upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("`{url}` is not a usable base URL: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot connect to `{url}`: {why}")]
    Connect { url: String, why: String },
    #[error("`{url}` failed the request: {source}")]
    Http {
        url: String,
        #[source]
        source: hyper::Error,
    },
}

impl Upstream {
    /// Parses `http://host[:port][/base]` or `https://…`.
    pub fn parse(url: &str) -> Result<Upstream, UpstreamError> {
        let bad = |why: &str| UpstreamError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be `http` or `https`")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if uri.query().is_some() {
            return Err(bad("a base URL has no query"));
        }
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let base_path = uri.path().trim_end_matches('/').to_string();
        let tls = https.then(tls_connector);
        Ok(Upstream {
            url: url.trim_end_matches('/').to_string(),
            host,
            port,
            base_path,
            tls,
        })
    }

    /// The base URL as configured (for messages; it holds no secret).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request target for a path and query the client asked for.
    pub fn target(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_path)
    }

    /// The `Host` header value.
    pub fn authority(&self) -> String {
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// Sends one request on a fresh connection; the connection is driven by a task on `tasks`
    /// until the response body is read or `stop` is cancelled.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let connect_error = |why: String| UpstreamError::Connect {
            url: self.url.clone(),
            why,
        };
        let connecting = async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|err| connect_error(err.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => self.handshake(tcp, tasks, stop).await,
                Some(connector) => {
                    let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                        .map_err(|err| connect_error(err.to_string()))?;
                    let tls = connector
                        .connect(name, tcp)
                        .await
                        .map_err(|err| connect_error(format!("TLS: {err}")))?;
                    self.handshake(tls, tasks, stop).await
                }
            }
        };
        let mut sender = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| connect_error(format!("no answer within {CONNECT_TIMEOUT:?}")))??;
        sender
            .send_request(request)
            .await
            .map_err(|source| UpstreamError::Http {
                url: self.url.clone(),
                source,
            })
    }

    async fn handshake<S>(
        &self,
        stream: S,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, UpstreamError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|source| UpstreamError::Http {
                url: self.url.clone(),
                source,
            })?;
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                res = connection => if let Err(err) = res {
                    debug!(error = %err, "upstream connection ended with an error");
                },
                () = stop.cancelled() => {}
            }
        });
        Ok(sender)
    }
}

/// rustls with the ring provider and Mozilla's roots, speaking HTTP/1.1 only.
fn tls_connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsConnector::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_upstream_speaks_tls_and_refuses_a_plain_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = TaskTracker::new();
        tasks.spawn(async move {
            use tokio::io::AsyncWriteExt;
            if let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        let upstream = Upstream::parse(&format!("https://127.0.0.1:{port}")).unwrap();
        let request = Request::builder()
            .uri("/v1/messages")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let err = upstream
            .send(request, &tasks, &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, UpstreamError::Connect { why, .. } if why.starts_with("TLS:")),
            "{err}"
        );
        tasks.close();
        tasks.wait().await;
    }

    #[test]
    fn base_urls_parse_into_target_and_host() {
        let anthropic = Upstream::parse(DEFAULT_BASE_URL).unwrap();
        assert_eq!(anthropic.authority(), "api.anthropic.com");
        assert_eq!(
            anthropic.target("/v1/messages?beta=true"),
            "/v1/messages?beta=true"
        );
        assert!(anthropic.tls.is_some());
        let fake = Upstream::parse("http://127.0.0.1:8080/prefix/").unwrap();
        assert_eq!(fake.authority(), "127.0.0.1:8080");
        assert_eq!(fake.target("/v1/messages"), "/prefix/v1/messages");
        assert!(fake.tls.is_none());
        for bad in ["ftp://x", "not a url", "http://x/?q=1", "/just/a/path"] {
            assert!(Upstream::parse(bad).is_err(), "{bad}");
        }
    }
}
