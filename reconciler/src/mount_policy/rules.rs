//! The fixed rules of additional mounts, as pure functions over path text: credential
//! patterns and their glob matching, system folders, invisible and look-alike characters, and
//! the `container_path` character set. No IO here; `mod.rs` applies these to resolved paths.

use std::path::{Component, Path, PathBuf};

/// Credential names refused anywhere in a mount's resolved path or below it (issue 7,
/// v2's defaults plus `.env.*`: docs/manifests.md#additional-mounts). Globs over path components,
/// matched without case: `*` is any run of characters, a `/` spans two consecutive components.
pub const CREDENTIAL_PATTERNS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".gpg",
    ".aws",
    ".azure",
    ".gcloud",
    ".config/gcloud",
    ".kube",
    ".docker",
    ".env",
    ".env.*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "*credentials*",
    "id_rsa*",
    "id_ed25519*",
    "*private_key*",
    ".secret*",
];

/// Folders never mounted, nor anything inside them (`/` is handled on its own).
pub const SYSTEM_DIRS: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/etc",
    "/boot",
    "/root",
    "/private/etc",
];

/// Folders whose direct children are home directories.
pub const HOME_PARENTS: &[&str] = &["/home", "/Users"];

/// Where the Docker socket usually is (plus `DOCKER_HOST`'s path, added at runtime).
pub const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// Longest `container_path`, in bytes.
pub const MAX_CONTAINER_PATH: usize = 100;

/// A credential pattern: one glob per path component, lower-case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    /// As written (for messages).
    pub text: String,
    segments: Vec<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        let segments = text
            .trim_matches('/')
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| fold(segment).to_lowercase())
            .collect();
        Pattern {
            text: text.to_string(),
            segments,
        }
    }

    /// v2's allowlist patterns match when a component *contains* them: `password` → `*password*`.
    pub fn containing(text: &str) -> Pattern {
        let mut pattern = Pattern::new(&format!("*{}*", text.trim_matches('*')));
        pattern.text = text.to_string();
        pattern
    }

    /// Whether the pattern matches the components ending at `components`' last one.
    pub fn matches_tail(&self, components: &[String]) -> bool {
        let n = self.segments.len();
        if n == 0 || components.len() < n {
            return false;
        }
        let tail = &components[components.len() - n..];
        self.segments
            .iter()
            .zip(tail)
            .all(|(segment, component)| glob(segment, component))
    }

    /// The first place in `components` where the pattern matches, as the matched text.
    pub fn find(&self, components: &[String]) -> Option<String> {
        (1..=components.len()).find_map(|end| {
            self.matches_tail(&components[..end])
                .then(|| components[end - self.segments.len()..end].join("/"))
        })
    }
}

/// The default credential patterns.
pub fn credential_patterns() -> Vec<Pattern> {
    CREDENTIAL_PATTERNS
        .iter()
        .map(|text| Pattern::new(text))
        .collect()
}

/// The components of a path, look-alikes folded and lower-cased, for pattern matching.
pub fn match_components(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|part| !part.is_empty())
        .map(|part| fold(part).to_lowercase())
        .collect()
}

/// The first pattern matching anywhere in `components`: (pattern text, matched components).
pub fn first_match(patterns: &[Pattern], components: &[String]) -> Option<(String, String)> {
    patterns.iter().find_map(|pattern| {
        pattern
            .find(components)
            .map(|found| (pattern.text.clone(), found))
    })
}

/// `*`-only glob over one component (both lower-case already).
fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|char| *char == '*')
}

/// An invisible or control character in `text`, if any: they make a path read as another.
pub fn invisible_char(text: &str) -> Option<char> {
    text.chars().find(|char| {
        char.is_control()
            || matches!(
                *char as u32,
                0x00AD
                    | 0x034F
                    | 0x061C
                    | 0x115F
                    | 0x1160
                    | 0x17B4
                    | 0x17B5
                    | 0x180B..=0x180F
                    | 0x200B..=0x200F
                    | 0x202A..=0x202E
                    | 0x2060..=0x206F
                    | 0x3164
                    | 0xFE00..=0xFE0F
                    | 0xFEFF
                    | 0xFFA0
                    | 0xFFF0..=0xFFF8
                    | 0xE0000..=0xE007F
            )
    })
}

/// `text` with invisible characters written as `\u{…}`, so a message shows where they are.
pub fn escape_invisible(text: &str) -> String {
    text.chars()
        .map(|char| match invisible_char(char.encode_utf8(&mut [0; 4])) {
            Some(_) => format!("\\u{{{:04X}}}", char as u32),
            None => char.to_string(),
        })
        .collect()
}

/// `text` with common look-alike characters replaced by the ASCII they imitate: fullwidth
/// forms, slash, dot, tilde and dash look-alikes, and Cyrillic/Greek letters shaped like Latin
/// ones. A small fixed table, not Unicode's full confusables list (docs/security.md).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for char in text.chars() {
        let code = char as u32;
        if (0xFF01..=0xFF5E).contains(&code) {
            out.push(char::from_u32(code - 0xFEE0).unwrap_or(char));
            continue;
        }
        let ascii = match char {
            '\u{2044}' | '\u{2215}' | '\u{29F8}' | '\u{2571}' | '\u{3033}' => "/",
            '\u{2024}' | '\u{FE52}' | '\u{A4F8}' | '\u{2E31}' | '\u{0701}' | '\u{0702}' => ".",
            '\u{2025}' => "..",
            '\u{2026}' => "...",
            '\u{02DC}' | '\u{223C}' | '\u{2053}' | '\u{301C}' => "~",
            '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE63}' => "-",
            'а' | 'α' => "a",
            'А' | 'Α' => "A",
            'В' | 'Β' => "B",
            'с' | 'ϲ' => "c",
            'С' | 'Ϲ' => "C",
            'ԁ' => "d",
            'е' | 'ε' => "e",
            'Е' | 'Ε' => "E",
            'ɡ' => "g",
            'һ' => "h",
            'Н' | 'Η' => "H",
            'і' | 'ι' => "i",
            'І' | 'Ι' => "I",
            'ј' => "j",
            'Ј' => "J",
            'к' | 'κ' => "k",
            'К' | 'Κ' => "K",
            'ӏ' => "l",
            'М' | 'Μ' => "M",
            'Ν' => "N",
            'о' | 'ο' => "o",
            'О' | 'Ο' => "O",
            'р' | 'ρ' => "p",
            'Р' | 'Ρ' => "P",
            'ԛ' => "q",
            'ѕ' => "s",
            'Ѕ' => "S",
            'Т' | 'Τ' => "T",
            'υ' => "u",
            'ν' => "v",
            'ԝ' => "w",
            'х' | 'χ' => "x",
            'Х' | 'Χ' => "X",
            'у' => "y",
            'Υ' | 'Ү' => "Y",
            'Ζ' => "Z",
            _ => {
                out.push(char);
                continue;
            }
        };
        out.push_str(ascii);
    }
    out
}

/// The system folder `path` is or lies in (compared without case), if any.
pub fn system_dir(path: &Path) -> Option<&'static str> {
    let lower = PathBuf::from(path.to_string_lossy().to_lowercase());
    SYSTEM_DIRS
        .iter()
        .find(|dir| lower.starts_with(dir))
        .copied()
}

/// Whether `path` is the root folder.
pub fn is_root(path: &Path) -> bool {
    path.components().all(|part| part == Component::RootDir)
}

/// Whether `path` is a folder holding home directories, or one of them.
pub fn is_home_or_home_parent(path: &Path) -> bool {
    HOME_PARENTS
        .iter()
        .any(|parent| path == Path::new(parent) || path.parent() == Some(Path::new(parent)))
}

/// `path` without `.` components, repeated or trailing slashes (text only; `..` stays).
pub fn lexical(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, true) => "/".to_string(),
        (true, false) => format!("/{joined}"),
        (false, _) => joined,
    }
}

/// What is wrong with a `container_path`, if anything (already trimmed of trailing `/`).
pub fn container_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        Some("must not be empty")
    } else if path.starts_with('/') {
        Some("must be relative (it is placed under `/workspace/extra/`)")
    } else if path.split('/').any(|part| part == "..") {
        Some("must not contain `..`")
    } else if !path
        .chars()
        .all(|char| char.is_ascii_alphanumeric() || matches!(char, '.' | '_' | '-' | '/'))
    {
        Some("may only hold letters, digits, `.`, `_`, `-` and `/`")
    } else if path.split('/').any(|part| part.is_empty() || part == ".") {
        Some("must not have empty or `.` segments")
    } else if path.len() > MAX_CONTAINER_PATH {
        Some("is longer than 100 characters")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str) -> Option<String> {
        first_match(&credential_patterns(), &match_components(path)).map(|(pattern, _)| pattern)
    }

    #[test]
    fn credential_patterns_match_whole_components_or_their_globs() {
        assert_eq!(hit("/home/me/.ssh").as_deref(), Some(".ssh"));
        assert_eq!(hit("/home/me/.SSH/x").as_deref(), Some(".ssh"));
        assert_eq!(hit("/srv/app/.env").as_deref(), Some(".env"));
        assert_eq!(hit("/srv/app/.env.production").as_deref(), Some(".env.*"));
        assert_eq!(
            hit("/srv/aws-credentials.json").as_deref(),
            Some("*credentials*")
        );
        assert_eq!(hit("/srv/id_ed25519.pub").as_deref(), Some("id_ed25519*"));
        assert_eq!(
            hit("/srv/my_private_key.pem").as_deref(),
            Some("*private_key*")
        );
        assert_eq!(hit("/srv/.secrets").as_deref(), Some(".secret*"));
        assert_eq!(
            hit("/home/me/.config/gcloud").as_deref(),
            Some(".config/gcloud")
        );
        // Not credentials: a name that merely contains a short pattern.
        assert_eq!(hit("/srv/.envrc-docs"), None);
        assert_eq!(hit("/home/me/.config/nanoclaw"), None);
        assert_eq!(hit("/srv/environment"), None);
        assert_eq!(hit("/srv/gcloud"), None);
    }

    #[test]
    fn look_alikes_fold_to_the_ascii_they_imitate() {
        assert_eq!(fold("．ѕѕһ"), ".ssh");
        assert_eq!(fold("/еtс"), "/etc");
        assert_eq!(fold("a∕b⁄c"), "a/b/c");
        assert_eq!(fold("‥"), "..");
        assert_eq!(fold("Документы"), "Дokyмeнты");
        assert_eq!(hit("/home/me/．ssh").as_deref(), Some(".ssh"));
    }

    #[test]
    fn invisible_characters_are_found() {
        assert_eq!(invisible_char("/srv/site\u{200B}"), Some('\u{200B}'));
        assert_eq!(invisible_char("/srv/\u{202E}etis"), Some('\u{202E}'));
        assert_eq!(invisible_char("/srv/a\nb"), Some('\n'));
        assert_eq!(invisible_char("/srv/Документы"), None);
        assert_eq!(escape_invisible("/srv/site\u{200B}"), "/srv/site\\u{200B}");
    }

    #[test]
    fn lexical_drops_dots_and_extra_slashes() {
        assert_eq!(lexical("/etc/"), "/etc");
        assert_eq!(lexical("//proc//"), "/proc");
        assert_eq!(lexical("/srv/./a/"), "/srv/a");
        assert_eq!(lexical("/"), "/");
        assert_eq!(lexical("/a/../b"), "/a/../b");
    }

    #[test]
    fn system_dirs_cover_their_insides_without_case() {
        assert_eq!(system_dir(Path::new("/etc/shadow")), Some("/etc"));
        assert_eq!(system_dir(Path::new("/ETC")), Some("/etc"));
        assert_eq!(system_dir(Path::new("/etcetera")), None);
        assert!(is_root(Path::new("/")));
        assert!(is_home_or_home_parent(Path::new("/home/someone")));
        assert!(is_home_or_home_parent(Path::new("/home")));
        assert!(!is_home_or_home_parent(Path::new("/home/someone/site")));
    }

    #[test]
    fn container_paths_use_a_small_safe_alphabet() {
        assert_eq!(container_path_problem("site"), None);
        assert_eq!(container_path_problem("a/b-c_d.e"), None);
        for bad in [
            "", "/abs", "../x", "a/../b", "a b", "c:d", "a//b", "./a", "ü",
        ] {
            assert!(container_path_problem(bad).is_some(), "{bad:?}");
        }
        assert!(container_path_problem(&"x".repeat(101)).is_some());
    }

    #[test]
    fn v2_patterns_match_when_contained() {
        let pattern = Pattern::containing("password");
        assert!(pattern.matches_tail(&match_components("/srv/my-passwords")));
        assert!(!pattern.matches_tail(&match_components("/srv/docs")));
    }
}
