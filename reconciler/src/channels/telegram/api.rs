//! The Bot API client: JSON and multipart `POST`s to `<base>/bot<token>/<method>`, file
//! downloads from `<base>/file/bot<token>/<path>`, and the typed [`ApiError`] every failure
//! becomes.
//!
//! It is a small client on the HTTP stack already in the tree (hyper through
//! `credentials::Upstream`: TCP, or rustls with compiled-in roots for `https`), not a Bot API
//! crate: docs/channels.md says why. The base URL is `NANOCLAW_TELEGRAM_API_URL` (default
//! [`DEFAULT_API_URL`]) so tests point it at a fake on loopback. The token is part of every
//! URL, so no error or log line here ever contains a URL: errors name the method only.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::types::ApiResponse;
use crate::credentials::{Secret, Upstream};

/// Telegram's Bot API, used when `NANOCLAW_TELEGRAM_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// Longest a request other than a long poll may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer read from the API (a `getUpdates` page of 100 updates fits many times).
const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// Largest file downloaded: the Bot API serves files up to 20 MB.
pub const MAX_DOWNLOAD: usize = 20 * 1024 * 1024;
/// The delay asked for after a 5xx that did not name one.
pub const SERVER_ERROR_DELAY: Duration = Duration::from_secs(5);

/// One bot's connection to the API.
#[derive(Clone)]
pub struct Api {
    upstream: Upstream,
    token: Secret,
    /// Drives each request's connection; owned by the adapter, waited for at its stop.
    tasks: TaskTracker,
    stop: CancellationToken,
}

/// Why a call failed. Messages name the method, never the URL (it holds the token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 429: flood control; try again after this long.
    #[error("`{method}`: rate limited, retry after {} s", .after.as_secs())]
    RetryAfter { method: String, after: Duration },
    /// 5xx: Telegram's side failed.
    #[error("`{method}`: server error {status}: {description}")]
    Server {
        method: String,
        status: u16,
        description: String,
    },
    /// 401 or 404 on every method: the token is wrong or revoked.
    #[error(
        "`{method}`: the bot token was refused ({status})\n\nhint: check it with BotFather and store it again with `nanoclaw auth set telegram`"
    )]
    Unauthorized { method: String, status: u16 },
    /// Any other 4xx: the request itself is refused (403 bot blocked or kicked, 400 chat not
    /// found, message too long …); repeating it does not help.
    #[error("`{method}`: refused ({status}): {description}")]
    Refused {
        method: String,
        status: u16,
        description: String,
    },
    /// No answer: connect, TLS, timeout, connection reset.
    #[error("`{method}`: {why}")]
    Network { method: String, why: String },
    /// An answer that is not the Bot API's JSON.
    #[error("`{method}`: unreadable answer: {why}")]
    Malformed { method: String, why: String },
}

/// What a failed delivery should do: the Bot API's errors sorted by what helps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Wait this long, then try again (no attempt counted).
    RetryAfter(Duration),
    /// Never try again (bot blocked or kicked, chat gone, message refused).
    Permanent,
    /// Try again later, counting the attempt.
    Transient,
}

impl ApiError {
    /// 429 and 5xx wait (as asked, or [`SERVER_ERROR_DELAY`]); other 4xx are permanent;
    /// network trouble, a refused token and garbage are transient.
    pub fn disposition(&self) -> Disposition {
        match self {
            ApiError::RetryAfter { after, .. } => Disposition::RetryAfter(*after),
            ApiError::Server { .. } => Disposition::RetryAfter(SERVER_ERROR_DELAY),
            ApiError::Refused { .. } => Disposition::Permanent,
            ApiError::Unauthorized { .. }
            | ApiError::Network { .. }
            | ApiError::Malformed { .. } => Disposition::Transient,
        }
    }

    /// The 400 an edit gets when the text did not change: the edit is, in effect, done.
    pub fn is_not_modified(&self) -> bool {
        matches!(self, ApiError::Refused { status: 400, description, .. } if description.contains("message is not modified"))
    }
}

/// One file of a multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// The form field (`document`, `photo`).
    pub field: String,
    pub filename: String,
    pub mime: String,
    pub data: Bytes,
}

impl Api {
    pub fn new(
        base_url: &str,
        token: Secret,
        tasks: TaskTracker,
        stop: CancellationToken,
    ) -> anyhow::Result<Api> {
        let upstream = Upstream::parse(base_url)?;
        Ok(Api {
            upstream,
            token,
            tasks,
            stop,
        })
    }

    /// The base URL (holds no secret).
    pub fn base_url(&self) -> &str {
        self.upstream.url()
    }

    /// Calls `method` with JSON parameters; `wait` is how long the server may hold the answer
    /// (the long-poll timeout of `getUpdates`), added to the usual limit.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        wait: Duration,
    ) -> Result<R, ApiError> {
        let body = serde_json::to_vec(params).map_err(|err| ApiError::Malformed {
            method: method.to_string(),
            why: err.to_string(),
        })?;
        let request = self.request(method, "application/json", body)?;
        self.exchange(method, request, wait).await
    }

    /// Calls `method` as `multipart/form-data`: text `fields` and one file.
    pub async fn call_multipart<R: DeserializeOwned>(
        &self,
        method: &str,
        fields: &[(&str, String)],
        upload: &Upload,
    ) -> Result<R, ApiError> {
        let boundary = boundary();
        let body = multipart_body(&boundary, fields, upload);
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let request = self.request(method, &content_type, body)?;
        self.exchange(method, request, Duration::ZERO).await
    }

    /// Downloads a file by the `file_path` `getFile` gave, at most [`MAX_DOWNLOAD`] bytes.
    pub async fn download(&self, file_path: &str) -> Result<Vec<u8>, ApiError> {
        let method = "file download";
        let target = self.upstream.target(&format!(
            "/file/bot{}/{}",
            self.token.expose(),
            file_path.trim_start_matches('/')
        ));
        let request = Request::get(target)
            .header(http::header::HOST, self.upstream.authority())
            .body(Full::new(Bytes::new()))
            .map_err(|err| malformed(method, err))?;
        let (status, body) = self
            .send(method, request, Duration::ZERO, MAX_DOWNLOAD)
            .await?;
        if status != StatusCode::OK {
            return Err(ApiError::Refused {
                method: method.into(),
                status: status.as_u16(),
                description: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        Ok(body.to_vec())
    }

    fn request(
        &self,
        method: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Request<Full<Bytes>>, ApiError> {
        let target = self
            .upstream
            .target(&format!("/bot{}/{method}", self.token.expose()));
        Request::post(target)
            .header(http::header::HOST, self.upstream.authority())
            .header(http::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| malformed(method, err))
    }

    async fn exchange<R: DeserializeOwned>(
        &self,
        method: &str,
        request: Request<Full<Bytes>>,
        wait: Duration,
    ) -> Result<R, ApiError> {
        let (status, body) = self.send(method, request, wait, MAX_ANSWER).await?;
        answer(method, status, &body)
    }

    async fn send(
        &self,
        method: &str,
        request: Request<Full<Bytes>>,
        wait: Duration,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let network = |why: String| ApiError::Network {
            method: method.to_string(),
            why,
        };
        let exchange = async {
            let response = self
                .upstream
                .send(request, &self.tasks, &self.stop)
                .await
                .map_err(|err| network(err.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|err| network(format!("reading the answer: {err}")))?
                .to_bytes();
            Ok((status, body))
        };
        let deadline = REQUEST_TIMEOUT + wait;
        tokio::select! {
            res = tokio::time::timeout(deadline, exchange) => {
                res.map_err(|_| network(format!("no answer within {} s", deadline.as_secs())))?
            }
            () = self.stop.cancelled() => Err(network("stopping".into())),
        }
    }
}

/// Reads an answer: `ok` → its result; otherwise the error by status and `parameters`.
pub fn answer<R: DeserializeOwned>(
    method: &str,
    status: StatusCode,
    body: &[u8],
) -> Result<R, ApiError> {
    let parsed: Result<ApiResponse<R>, _> = serde_json::from_slice(body);
    let response = match parsed {
        Ok(response) => response,
        Err(_) if status.is_server_error() => {
            return Err(ApiError::Server {
                method: method.into(),
                status: status.as_u16(),
                description: String::from_utf8_lossy(body).chars().take(200).collect(),
            });
        }
        Err(err) => return Err(malformed(method, err)),
    };
    if response.ok
        && let Some(result) = response.result
    {
        return Ok(result);
    }
    let code = response
        .error_code
        .unwrap_or(status.as_u16())
        .max(status.as_u16());
    let description = response.description.unwrap_or_default();
    let retry_after = response
        .parameters
        .as_ref()
        .and_then(|parameters| parameters.retry_after);
    Err(match code {
        429 => ApiError::RetryAfter {
            method: method.into(),
            after: Duration::from_secs(retry_after.unwrap_or(1)),
        },
        500..=599 => match retry_after {
            Some(seconds) => ApiError::RetryAfter {
                method: method.into(),
                after: Duration::from_secs(seconds),
            },
            None => ApiError::Server {
                method: method.into(),
                status: code,
                description,
            },
        },
        401 | 404 => ApiError::Unauthorized {
            method: method.into(),
            status: code,
        },
        400..=499 => ApiError::Refused {
            method: method.into(),
            status: code,
            description,
        },
        _ => malformed(method, "`ok` is false without an error code"),
    })
}

fn malformed(method: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::Malformed {
        method: method.to_string(),
        why: why.to_string(),
    }
}

/// A multipart boundary no file can contain by chance.
fn boundary() -> String {
    format!("nanoclaw-{}", agent_runner::session_db::new_id("part"))
}

/// `multipart/form-data` (RFC 7578): the text fields, then the file.
pub fn multipart_body(boundary: &str, fields: &[(&str, String)], upload: &Upload) -> Vec<u8> {
    let mut body = Vec::with_capacity(upload.data.len() + 512);
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    let filename = upload.filename.replace(['"', '\r', '\n', '\\'], "_");
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{filename}\"\r\nContent-Type: {}\r\n\r\n",
            upload.field, upload.mime
        )
        .as_bytes(),
    );
    body.extend_from_slice(&upload.data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::telegram::types::{Message, User};

    #[track_caller]
    fn check_error(status: u16, body: &str) -> ApiError {
        answer::<bool>(
            "sendMessage",
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
        .unwrap_err()
    }

    #[test]
    fn a_429_waits_as_long_as_telegram_asks() {
        let err = check_error(
            429,
            include_str!(
                "../../../../tests/fixtures/telegram/responses/429-too-many-requests.json"
            ),
        );
        assert_eq!(
            err.disposition(),
            Disposition::RetryAfter(Duration::from_secs(7))
        );
        assert!(err.to_string().contains("retry after 7 s"), "{err}");
    }

    #[test]
    fn a_403_is_permanent_and_a_5xx_waits() {
        let blocked = check_error(
            403,
            include_str!("../../../../tests/fixtures/telegram/responses/403-bot-blocked.json"),
        );
        assert_eq!(blocked.disposition(), Disposition::Permanent);
        assert!(blocked.to_string().contains("bot was blocked by the user"));
        let bad_gateway = check_error(502, "<html>Bad Gateway</html>");
        assert_eq!(
            bad_gateway.disposition(),
            Disposition::RetryAfter(SERVER_ERROR_DELAY)
        );
        let internal = check_error(
            500,
            r#"{"ok":false,"error_code":500,"description":"Internal Server Error"}"#,
        );
        assert_eq!(
            internal.disposition(),
            Disposition::RetryAfter(SERVER_ERROR_DELAY)
        );
    }

    #[test]
    fn a_refused_token_names_the_command_and_is_not_permanent() {
        let err = check_error(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
        );
        assert_eq!(err.disposition(), Disposition::Transient);
        assert!(
            err.to_string().contains("`nanoclaw auth set telegram`"),
            "{err}"
        );
    }

    #[test]
    fn an_unchanged_edit_is_recognised() {
        let err = check_error(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same"}"#,
        );
        assert!(err.is_not_modified());
        assert_eq!(err.disposition(), Disposition::Permanent);
    }

    #[test]
    fn recorded_answers_parse() {
        let me: User = answer(
            "getMe",
            StatusCode::OK,
            include_bytes!("../../../../tests/fixtures/telegram/responses/getMe.json"),
        )
        .unwrap();
        assert!(me.is_bot);
        assert_eq!(me.username.as_deref(), Some("nanoclaw_test_bot"));
        let sent: Message = answer(
            "sendMessage",
            StatusCode::OK,
            include_bytes!("../../../../tests/fixtures/telegram/responses/sendMessage.json"),
        )
        .unwrap();
        assert_eq!(sent.message_id, 4242);
    }

    #[test]
    fn multipart_bodies_carry_fields_and_the_file() {
        let upload = Upload {
            field: "document".into(),
            filename: "re\"port.txt".into(),
            mime: "text/plain".into(),
            data: Bytes::from_static(b"hello"),
        };
        let body = multipart_body("B", &[("chat_id", "42".into())], &upload);
        expect_test::expect![[r#"
            --B
            Content-Disposition: form-data; name="chat_id"

            42
            --B
            Content-Disposition: form-data; name="document"; filename="re_port.txt"
            Content-Type: text/plain

            hello
            --B--
        "#]]
        .assert_eq(&String::from_utf8(body).unwrap().replace("\r\n", "\n"));
    }
}
