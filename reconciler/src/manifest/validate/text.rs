//! Text rules shared by the kinds: invisible characters in ids and names, look-alike
//! (confusable) ids, names that become file names, URLs and environment variable names.
//! Part of `validate`; pure.

use std::sync::LazyLock;

use regex::Regex;

use super::rx;
pub use crate::manifest::diagnostic::{is_invisible, shown};

/// Characters that may start and continue a name that becomes a file or folder name (MCP
/// servers, skills): no `/`, no leading `.`, nothing a shell or a path treats specially.
static SAFE_NAME: LazyLock<Regex> = LazyLock::new(|| rx(r"^[A-Za-z0-9][A-Za-z0-9._-]*$"));
static ENV_KEY: LazyLock<Regex> = LazyLock::new(|| rx(r"^[A-Za-z_][A-Za-z0-9_]*$"));
/// A Docker image reference: `[registry[:port]/]name[/name…][:tag][@sha256:…]`.
static IMAGE: LazyLock<Regex> = LazyLock::new(|| {
    let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
    rx(&format!(
        r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?/)?{component}(?:/{component})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$"
    ))
});

/// The first control or invisible (zero-width, bidi, default-ignorable) character of `text`.
pub fn invisible(text: &str) -> Option<char> {
    text.chars().find(|c| is_invisible(*c))
}

/// The non-ASCII characters of `text` as `U+0430`, for telling look-alikes apart.
pub fn non_ascii(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in text.chars().filter(|c| !c.is_ascii()) {
        let code = format!("`{c}` U+{:04X}", c as u32);
        if !out.contains(&code) {
            out.push(code);
        }
    }
    out
}

/// The UTS #39 skeleton (via `unicode-security`): two strings with the same skeleton look
/// alike (`аlice` with a Cyrillic `а` and `alice`).
pub fn skeleton(text: &str) -> String {
    unicode_security::skeleton(text).collect()
}

/// Why `name` cannot be a file or folder name, if it cannot.
pub fn unsafe_name(name: &str, max: usize) -> Option<String> {
    if name.is_empty() {
        Some("must not be empty".to_string())
    } else if name.chars().count() > max {
        Some(format!("is longer than {max} characters"))
    } else if !SAFE_NAME.is_match(name) {
        Some(
            "may only hold letters, digits, `.`, `_` and `-`, starting with a letter or digit (it becomes a file name)"
                .to_string(),
        )
    } else {
        None
    }
}

/// Why `url` is not an `http(s)` URL with a host, if it is not.
pub fn bad_url(url: &str) -> Option<&'static str> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some("must start with `https://` or `http://`");
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Some("has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces or control characters");
    }
    None
}

/// Is `key` a valid environment variable name (`[A-Za-z_][A-Za-z0-9_]*`)?
pub fn is_env_key(key: &str) -> bool {
    ENV_KEY.is_match(key)
}

/// Is `image` a valid Docker image reference?
pub fn is_image_reference(image: &str) -> bool {
    image.len() <= 255 && IMAGE.is_match(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_found_and_shown() {
        assert_eq!(invisible("alice"), None);
        assert_eq!(invisible("al\u{200b}ice"), Some('\u{200b}'));
        assert_eq!(invisible("a\u{1b}[31m"), Some('\u{1b}'));
        assert_eq!(invisible("a\u{202e}b"), Some('\u{202e}'));
        assert_eq!(shown("a\u{1b}[31m\u{200d}é"), "a\\u{1b}[31m\\u{200d}é");
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        assert_eq!(skeleton("telegram:alice"), skeleton("telegram:\u{430}lice"));
        assert_eq!(skeleton("cli:paypal"), skeleton("cli:p\u{430}yp\u{430}l"));
        assert_ne!(skeleton("telegram:1001"), skeleton("telegram:1002"));
        assert_eq!(non_ascii("\u{430}l\u{430}"), ["`\u{430}` U+0430"]);
    }

    #[test]
    fn names_urls_env_keys_and_images() {
        assert_eq!(unsafe_name("github", 64), None);
        assert_eq!(unsafe_name("my_server.v2", 64), None);
        assert!(unsafe_name("../../../../tmp/pwned", 64).is_some());
        assert!(unsafe_name(".hidden", 64).is_some());
        assert!(unsafe_name("a b", 64).is_some());
        assert_eq!(bad_url("https://mcp.example.com/sse"), None);
        assert_eq!(bad_url("HTTP://localhost:8080"), None);
        assert!(bad_url("file:///etc/passwd").is_some());
        assert!(bad_url("javascript:alert(1)").is_some());
        assert!(bad_url("https:///path").is_some());
        assert!(bad_url("https://a b").is_some());
        assert!(is_env_key("GITHUB_TOKEN"));
        assert!(is_env_key("_x1"));
        for bad in ["", "A=B", "X\nY", "1X", "A-B"] {
            assert!(!is_env_key(bad), "{bad:?}");
        }
        for good in [
            "nanoclaw-agent:latest",
            "ghcr.io/me/agent:1.2",
            "localhost:5000/agent",
            "agent@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_image_reference(good), "{good}");
        }
        for bad in ["Bad Image", "UPPER", "a:b:c", "", "agent:", "-agent"] {
            assert!(!is_image_reference(bad), "{bad}");
        }
    }
}
