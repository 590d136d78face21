//! `nanoclaw doctor`'s findings: one [`Check`] per thing that can be wrong, each with what was
//! found and, when it is not fine, the fix. Pure: the facts are gathered by `ops::doctor`;
//! here they are judged (disk thresholds, what each provider and channel type needs) and
//! rendered as text or JSON.

use std::fmt::Write as _;

use serde::Serialize;

/// Below this much free space in the data dir's file system, a warning.
pub const DISK_WARN_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Below this much, a failure: session DBs and logs stop being written.
pub const DISK_FAIL_BYTES: u64 = 256 * 1024 * 1024;

/// How a check came out, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    /// Not checked (it depends on a check that failed, or does not apply).
    Skipped,
    Warn,
    Fail,
}

impl Outcome {
    fn mark(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Skipped => "--",
            Outcome::Warn => "warn",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable id (`docker`, `images`, `credentials`, …) for scripts reading `--json`.
    pub id: &'static str,
    pub outcome: Outcome,
    /// What was found.
    pub summary: String,
    /// What to do about it (absent when fine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(id: &'static str, summary: impl Into<String>) -> Check {
        Check {
            id,
            outcome: Outcome::Ok,
            summary: summary.into(),
            fix: None,
        }
    }

    pub fn skipped(id: &'static str, summary: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Skipped,
            ..Check::ok(id, summary)
        }
    }

    pub fn warn(id: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            id,
            outcome: Outcome::Warn,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(id: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            outcome: Outcome::Fail,
            ..Check::warn(id, summary, fix)
        }
    }
}

/// Every check of one run, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub data_dir: String,
    pub slug: String,
    pub checks: Vec<Check>,
}

impl Findings {
    /// The worst outcome (`Ok` when there is no check).
    pub fn worst(&self) -> Outcome {
        self.checks
            .iter()
            .map(|check| check.outcome)
            .max()
            .unwrap_or(Outcome::Ok)
    }

    /// One line per check, its fix indented below it, then a count.
    pub fn render(&self) -> String {
        let mut out = format!(
            "nanoclaw doctor: data dir {} (install {})\n\n",
            self.data_dir, self.slug
        );
        for check in &self.checks {
            let _ = writeln!(
                out,
                "[{:>4}] {}: {}",
                check.outcome.mark(),
                check.id,
                check.summary
            );
            if let Some(fix) = &check.fix {
                for line in fix.lines() {
                    let _ = writeln!(out, "       fix: {line}");
                }
            }
        }
        let count = |outcome| self.checks.iter().filter(|c| c.outcome == outcome).count();
        let _ = writeln!(
            out,
            "\n{} ok, {} warnings, {} failures, {} skipped",
            count(Outcome::Ok),
            count(Outcome::Warn),
            count(Outcome::Fail),
            count(Outcome::Skipped)
        );
        out
    }
}

/// What a channel type needs before it can connect. One row per adapter: Telegram adds its
/// token here.
pub struct ChannelNeeds {
    pub channel_type: &'static str,
    /// The token's name and how to set it; `None`: no token needed.
    pub token: Option<(&'static str, &'static str)>,
}

pub const CHANNEL_NEEDS: &[ChannelNeeds] = &[ChannelNeeds {
    channel_type: "cli",
    token: None,
}];

/// The channel check for the channel types in use.
pub fn channels(in_use: &[String], has_token: &dyn Fn(&str) -> bool) -> Check {
    if in_use.is_empty() {
        return Check::ok("channels", "no channel is configured");
    }
    let mut problems = Vec::new();
    let mut fixes = Vec::new();
    for channel_type in in_use {
        match CHANNEL_NEEDS
            .iter()
            .find(|needs| needs.channel_type == channel_type)
        {
            None => {
                problems.push(format!("`{channel_type}` has no adapter in this nanoclaw"));
                fixes.push(format!(
                    "remove the `{channel_type}` channels or upgrade nanoclaw; known: {}",
                    CHANNEL_NEEDS
                        .iter()
                        .map(|n| format!("`{}`", n.channel_type))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Some(ChannelNeeds {
                token: Some((name, how)),
                ..
            }) if !has_token(name) => {
                problems.push(format!("`{channel_type}` has no {name}"));
                fixes.push((*how).to_string());
            }
            Some(_) => {}
        }
    }
    let types = in_use
        .iter()
        .map(|t| format!("`{t}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if problems.is_empty() {
        Check::ok(
            "channels",
            format!("{types}: every channel in use can connect"),
        )
    } else {
        Check::fail("channels", problems.join("; "), fixes.join("\n"))
    }
}

/// The disk check for `free` bytes available in the data dir's file system.
pub fn disk(free: u64, path: &str) -> Check {
    let shown = format!(
        "{:.1} GiB free in {path}",
        free as f64 / (1024.0 * 1024.0 * 1024.0)
    );
    if free < DISK_FAIL_BYTES {
        Check::fail(
            "disk",
            shown,
            "free space on that file system: sessions, logs and the DB grow there",
        )
    } else if free < DISK_WARN_BYTES {
        Check::warn(
            "disk",
            shown,
            "free space soon: below 256 MiB nanoclaw cannot write sessions",
        )
    } else {
        Check::ok("disk", shown)
    }
}

/// Whether Docker API `version` ("1.41") is at least the 1.41 nanoclaw needs.
pub fn api_supported(version: &str) -> bool {
    let mut parts = version
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (1, 41)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_outcome_decides_and_fixes_are_shown_under_their_check() {
        let findings = Findings {
            data_dir: "/d".into(),
            slug: "1a2b3c4d".into(),
            checks: vec![
                Check::ok("docker", "Engine 20.10.24, API 1.41"),
                Check::warn(
                    "service",
                    "not installed",
                    "nanoclaw service install manifests",
                ),
                Check::skipped("images", "Docker is not reachable"),
            ],
        };
        assert_eq!(findings.worst(), Outcome::Warn);
        expect_test::expect![[r#"
            nanoclaw doctor: data dir /d (install 1a2b3c4d)

            [  ok] docker: Engine 20.10.24, API 1.41
            [warn] service: not installed
                   fix: nanoclaw service install manifests
            [  --] images: Docker is not reachable

            1 ok, 1 warnings, 0 failures, 1 skipped
        "#]]
        .assert_eq(&findings.render());
        let json = serde_json::to_value(&findings).unwrap();
        assert_eq!(json["checks"][1]["outcome"], "warn");
        assert!(json["checks"][0].get("fix").is_none());
    }

    #[test]
    fn channel_tokens_are_a_table_by_channel_type() {
        let none = |_: &str| false;
        assert_eq!(channels(&["cli".into()], &none).outcome, Outcome::Ok);
        let unknown = channels(&["carrier-pigeon".into()], &none);
        assert_eq!(unknown.outcome, Outcome::Fail);
        assert!(unknown.summary.contains("`carrier-pigeon` has no adapter"));
    }

    #[test]
    fn disk_and_api_thresholds() {
        assert_eq!(disk(DISK_FAIL_BYTES - 1, "/d").outcome, Outcome::Fail);
        assert_eq!(disk(DISK_WARN_BYTES - 1, "/d").outcome, Outcome::Warn);
        assert_eq!(disk(DISK_WARN_BYTES, "/d").outcome, Outcome::Ok);
        assert!(api_supported("1.41") && api_supported("1.45") && api_supported("2.0"));
        assert!(!api_supported("1.40") && !api_supported("garbage"));
    }
}
