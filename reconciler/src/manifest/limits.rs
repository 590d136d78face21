//! Every size and count limit on manifests, declared once: the walk, the parser budgets and
//! the string checks read these constants, and the "Limits" table of docs/manifests.md is
//! generated from [`LIMITS`] (a test keeps it fresh).
//!
//! The limits make loading bounded for any input a hostile manifest repository can hold: a
//! load reads at most [`MAX_TOTAL_BYTES`], in at most [`MAX_FILES`] files, from a walk of at
//! most [`MAX_ENTRIES`] directory entries and [`MAX_WALK_DEPTH`] folder levels. No IO here.

/// Folder levels below the manifest folder that are walked.
pub const MAX_WALK_DEPTH: usize = 16;
/// Directory entries (files, folders, anything) the walk looks at in total.
pub const MAX_ENTRIES: usize = 100_000;
/// Manifest files (`*.yaml`, `*.yml`) read in one load.
pub const MAX_FILES: usize = 10_000;
/// Size of one manifest file.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Size of all manifest files of one load together.
pub const MAX_TOTAL_BYTES: u64 = 32 * 1024 * 1024;
/// YAML documents in one file.
pub const MAX_DOCUMENTS: usize = 1_000;
/// Deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;
/// Most alias (`*name`) uses in one document.
pub const MAX_ALIASES: usize = 1_000;
/// Most events an alias expansion may replay in one file (stops "billion laughs").
pub const MAX_REPLAYED_EVENTS: usize = 10_000;
/// Parser events in one document.
pub const MAX_EVENTS: usize = 200_000;
/// Nodes (scalars, mappings, lists) in one document.
pub const MAX_NODES: usize = 100_000;
/// Bytes of any one string value (the longest legitimate ones are `instructions`).
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Bytes of an `engage_pattern` regex source.
pub const MAX_PATTERN_BYTES: usize = 1_024;
/// Bytes the regex crate may use for one compiled pattern (its `size_limit` and
/// `dfa_size_limit`): compiling and matching a manifest regex stays bounded.
pub const REGEX_SIZE_LIMIT: usize = crate::state::ENGAGE_PATTERN_SIZE_LIMIT;
/// Characters of an agent, channel, MCP server or skill name.
pub const MAX_NAME_LEN: usize = 64;
/// Packages (apt + npm) one agent may list.
pub const MAX_PACKAGES: usize = 20;

/// One documented limit: what is limited and its value as written in the docs.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    pub what: &'static str,
    pub value: usize,
    pub unit: Unit,
}

/// How a limit's value reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Bytes,
}

/// The limits table of docs/manifests.md, in reading order.
pub const LIMITS: &[Limit] = &[
    limit(
        "folder levels below the manifest folder",
        MAX_WALK_DEPTH,
        Unit::Count,
    ),
    limit(
        "directory entries looked at by the walk",
        MAX_ENTRIES,
        Unit::Count,
    ),
    limit("manifest files", MAX_FILES, Unit::Count),
    limit("size of one file", MAX_FILE_BYTES as usize, Unit::Bytes),
    limit(
        "size of all files together",
        MAX_TOTAL_BYTES as usize,
        Unit::Bytes,
    ),
    limit("documents per file", MAX_DOCUMENTS, Unit::Count),
    limit("nesting depth (mappings and lists)", MAX_DEPTH, Unit::Count),
    limit(
        "alias (`*name`) uses per document",
        MAX_ALIASES,
        Unit::Count,
    ),
    limit(
        "events replayed by alias expansion (\"billion laughs\")",
        MAX_REPLAYED_EVENTS,
        Unit::Count,
    ),
    limit("parser events per document", MAX_EVENTS, Unit::Count),
    limit("nodes per document", MAX_NODES, Unit::Count),
    limit(
        "one string value (`instructions` and every other)",
        MAX_STRING_BYTES,
        Unit::Bytes,
    ),
    limit("`engage_pattern` source", MAX_PATTERN_BYTES, Unit::Bytes),
    limit(
        "compiled `engage_pattern` (regex `size_limit` and `dfa_size_limit`)",
        REGEX_SIZE_LIMIT,
        Unit::Bytes,
    ),
    limit(
        "agent, channel, MCP server and skill names",
        MAX_NAME_LEN,
        Unit::Count,
    ),
    limit("packages per agent (apt + npm)", MAX_PACKAGES, Unit::Count),
];

const fn limit(what: &'static str, value: usize, unit: Unit) -> Limit {
    Limit { what, value, unit }
}

/// `4 MiB`, `1,000`, `64 KiB`: a value as the docs and errors write it.
pub fn show(value: usize, unit: Unit) -> String {
    match unit {
        Unit::Bytes if value >= 1024 * 1024 && value.is_multiple_of(1024 * 1024) => {
            format!("{} MiB", value / (1024 * 1024))
        }
        Unit::Bytes if value >= 1024 && value.is_multiple_of(1024) => {
            format!("{} KiB", value / 1024)
        }
        Unit::Bytes => format!("{} bytes", thousands(value)),
        Unit::Count => thousands(value),
    }
}

/// `100000` → `100,000`.
pub fn thousands(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Marks where the generated limits table sits in docs/manifests.md.
pub const DOC_BEGIN: &str = "<!-- BEGIN GENERATED: limits (cargo test rewrites it) -->";
pub const DOC_END: &str = "<!-- END GENERATED -->";

/// `doc` with the text between the markers replaced by the current table.
pub fn refresh_doc(doc: &str) -> Option<String> {
    let (before, rest) = doc.split_once(DOC_BEGIN)?;
    let (_, after) = rest.split_once(DOC_END)?;
    Some(format!(
        "{before}{DOC_BEGIN}\n{}{DOC_END}{after}",
        table_markdown()
    ))
}

/// The generated "Limits" table of docs/manifests.md (between the GENERATED markers).
pub fn table_markdown() -> String {
    let mut out = String::from("| limit | value |\n|---|---|\n");
    for limit in LIMITS {
        out.push_str(&format!(
            "| {} | {} |\n",
            limit.what,
            show(limit.value, limit.unit)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_like_the_docs() {
        assert_eq!(show(4 * 1024 * 1024, Unit::Bytes), "4 MiB");
        assert_eq!(show(64 * 1024, Unit::Bytes), "64 KiB");
        assert_eq!(show(1_000, Unit::Bytes), "1,000 bytes");
        assert_eq!(show(100_000, Unit::Count), "100,000");
        assert_eq!(show(16, Unit::Count), "16");
    }

    #[test]
    fn the_docs_limits_table_is_fresh() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/manifests.md");
        let current = std::fs::read_to_string(&path).unwrap();
        let fresh = refresh_doc(&current).expect("docs/manifests.md has the limits markers");
        if current != fresh {
            std::fs::write(&path, fresh).unwrap();
            panic!("docs/manifests.md was stale and has been regenerated: review and commit it");
        }
    }
}
