//! An agent's container resource limits (`resources: {memory, cpus, pids}` in a manifest):
//! the value types, how they are parsed from manifest text and printed back, their bounds,
//! and the defaults a container gets when the manifest says nothing.
//!
//! Pure: no IO. Validation parses with [`Memory::parse`], [`Cpus::parse`] and [`check_pids`];
//! the state, the DB columns, the plan and the spawn all carry these types, so every value is
//! parsed and printed in this one place. Turning them into Docker's numbers is
//! `containers::spawn`'s job.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Memory limit when the manifest sets none: room for Claude Code (a Node process), an MCP
/// server or two and the tools they run, while a runaway agent takes at most this from the host.
pub const DEFAULT_MEMORY: Memory = Memory(2 * GIB);
/// CPU limit when the manifest sets none: agents mostly wait on the model; one core keeps a
/// busy loop from starving the host and the other agents.
pub const DEFAULT_CPUS: Cpus = Cpus(1000);
/// Process and thread limit when the manifest sets none: Node, MCP servers and shell tools use
/// tens to low hundreds; a fork bomb stops here, far below the host's `pid_max`.
pub const DEFAULT_PIDS: u32 = 512;

/// Smallest memory limit: the runner alone needs a few MiB; below this nothing useful runs.
pub const MIN_MEMORY: Memory = Memory(32 * MIB);
/// Smallest CPU limit: Docker's 1 ms per 100 ms scheduling period.
pub const MIN_CPUS: Cpus = Cpus(10);
/// Largest CPU limit accepted (more than the host has only means "not throttled").
pub const MAX_CPUS: Cpus = Cpus(1024 * 1000);
/// Smallest pids limit: Docker's init, the runner and a few helpers.
pub const MIN_PIDS: u32 = 16;
/// Largest pids limit: Linux's `PID_MAX_LIMIT` (2^22).
pub const MAX_PIDS: u32 = 4_194_304;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

/// The limits one agent's containers run with; `None` = the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub memory: Option<Memory>,
    #[serde(default)]
    pub cpus: Option<Cpus>,
    #[serde(default)]
    pub pids: Option<u32>,
}

impl Resources {
    pub fn is_default(&self) -> bool {
        *self == Resources::default()
    }

    /// The memory limit in force: the agent's, else [`DEFAULT_MEMORY`].
    pub fn memory_or_default(&self) -> Memory {
        self.memory.unwrap_or(DEFAULT_MEMORY)
    }

    pub fn cpus_or_default(&self) -> Cpus {
        self.cpus.unwrap_or(DEFAULT_CPUS)
    }

    pub fn pids_or_default(&self) -> u32 {
        self.pids.unwrap_or(DEFAULT_PIDS)
    }

    /// From the `container_configs` columns `memory_bytes`, `cpu_millis`, `pids_limit` (their
    /// CHECKs keep them positive; anything else reads as the default).
    pub fn from_columns(
        memory_bytes: Option<i64>,
        cpu_millis: Option<i64>,
        pids_limit: Option<i64>,
    ) -> Resources {
        Resources {
            memory: memory_bytes
                .and_then(|bytes| u64::try_from(bytes).ok())
                .map(Memory),
            cpus: cpu_millis
                .and_then(|millis| u32::try_from(millis).ok())
                .map(Cpus),
            pids: pids_limit.and_then(|pids| u32::try_from(pids).ok()),
        }
    }

    /// The values of those columns, in that order.
    pub fn to_columns(&self) -> [Option<i64>; 3] {
        [
            self.memory
                .map(|memory| i64::try_from(memory.0).unwrap_or(i64::MAX)),
            self.cpus.map(|cpus| i64::from(cpus.0)),
            self.pids.map(i64::from),
        ]
    }
}

/// A memory size in bytes. Text form: a number and a binary unit (`512MiB`, `2GiB`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Memory(u64);

/// A CPU share in thousandths of a CPU (`1500` = 1.5 CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cpus(u32);

/// Why a `resources` value is refused; rendered as the diagnostic's message and hint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub hint: String,
}

impl Memory {
    pub const fn from_bytes(bytes: u64) -> Memory {
        Memory(bytes)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// Parses manifest text: a decimal number and an optional unit, `k`, `m`, `g` or `t`,
    /// optionally followed by `b` or `ib`, in any case. Every unit is binary (`512m`, `512MB`
    /// and `512MiB` are all 512 × 2^20 bytes), as in Docker's `--memory`; no unit means bytes.
    pub fn parse(text: &str) -> Result<Memory, Refusal> {
        let memory = Memory::parse_unbounded(text)?;
        if memory < MIN_MEMORY {
            let has_unit = text.trim().ends_with(|c: char| c.is_ascii_alphabetic());
            let hint = if has_unit {
                format!("give an agent at least `{MIN_MEMORY}`; the default is `{DEFAULT_MEMORY}`")
            } else {
                format!(
                    "a number without a unit is bytes: write `{text}m` for {text} MiB (at least `{MIN_MEMORY}`)"
                )
            };
            return Err(Refusal {
                message: format!(
                    "`resources.memory` `{text}` is below the minimum of {MIN_MEMORY}"
                ),
                hint,
            });
        }
        Ok(memory)
    }

    /// [`Memory::parse`] without the minimum (for values read back from the DB).
    fn parse_unbounded(text: &str) -> Result<Memory, Refusal> {
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(split);
        let unit_size = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => KIB,
            "m" | "mb" | "mib" => MIB,
            "g" | "gb" | "gib" => GIB,
            "t" | "tb" | "tib" => TIB,
            _ if number.is_empty() => return Err(not_a_size(text)),
            other => {
                return Err(Refusal {
                    message: format!("`resources.memory` `{text}` has an unknown unit `{other}`"),
                    hint: UNIT_HINT.to_string(),
                });
            }
        };
        let Some((mantissa, scale)) = decimal(number) else {
            return Err(not_a_size(text));
        };
        let too_large = || Refusal {
            message: format!("`resources.memory` `{text}` is too large"),
            hint: format!(
                "the default is `{DEFAULT_MEMORY}`; a limit above the host's memory means no limit"
            ),
        };
        let bytes = mantissa
            .checked_mul(u128::from(unit_size))
            .ok_or_else(too_large)?
            / 10u128.pow(scale);
        let bytes = u64::try_from(bytes)
            .ok()
            .filter(|bytes| i64::try_from(*bytes).is_ok())
            .ok_or_else(too_large)?;
        Ok(Memory(bytes))
    }
}

const UNIT_HINT: &str =
    "write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)";

fn not_a_size(text: &str) -> Refusal {
    Refusal {
        message: format!("`resources.memory` `{text}` is not a size"),
        hint: UNIT_HINT.to_string(),
    }
}

/// `"1.25"` → `(125, 2)`: digits as an integer and the number of decimals. `None` unless the
/// text is digits with at most one `.` between digits.
fn decimal(text: &str) -> Option<(u128, u32)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let is_digits = |part: &str| part.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !is_digits(whole) || !is_digits(fraction) {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let scale = u32::try_from(fraction.len()).ok()?;
    if digits.len() > 30 {
        return None;
    }
    Some((digits.parse().ok()?, scale))
}

/// The largest binary unit that divides the size exactly: `1536MiB`, `2GiB`, `1000` (bytes).
impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (size, unit) in [(TIB, "TiB"), (GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
            if bytes >= size && bytes.is_multiple_of(size) {
                return write!(f, "{}{unit}", bytes / size);
            }
        }
        write!(f, "{bytes}")
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Memory, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Bytes(u64),
            Text(String),
        }
        match Form::deserialize(deserializer)? {
            Form::Bytes(bytes) => Ok(Memory(bytes)),
            // Read back as stored, even below today's minimum.
            Form::Text(text) => Memory::parse_unbounded(&text)
                .map_err(|refusal| serde::de::Error::custom(refusal.message)),
        }
    }
}

impl Cpus {
    pub const fn from_millis(millis: u32) -> Cpus {
        Cpus(millis)
    }

    pub const fn millis(self) -> u32 {
        self.0
    }

    /// Parses a positive decimal number of CPUs (`0.5`, `2`), rounded to thousandths.
    pub fn parse(text: &str) -> Result<Cpus, Refusal> {
        let trimmed = text.trim();
        let hint = format!(
            "write a positive number of CPUs, `0.5` for half a core, at least `{MIN_CPUS}`; the default is `{DEFAULT_CPUS}`"
        );
        let Some((mantissa, scale)) = decimal(trimmed) else {
            return Err(Refusal {
                message: format!("`resources.cpus` `{text}` is not a number of CPUs"),
                hint,
            });
        };
        // Round half up to thousandths.
        let millis = if scale <= 3 {
            mantissa.saturating_mul(10u128.pow(3 - scale))
        } else {
            (mantissa + 5 * 10u128.pow(scale - 4)) / 10u128.pow(scale - 3)
        };
        let cpus = u32::try_from(millis).map_or(Cpus(u32::MAX), Cpus);
        if cpus < MIN_CPUS {
            return Err(Refusal {
                message: format!(
                    "`resources.cpus` `{text}` is below the minimum of {MIN_CPUS} CPUs"
                ),
                hint,
            });
        }
        if cpus > MAX_CPUS {
            return Err(Refusal {
                message: format!("`resources.cpus` `{text}` is more than {MAX_CPUS} CPUs"),
                hint: "a limit above the host's cores only means the agent is not throttled"
                    .to_string(),
            });
        }
        Ok(cpus)
    }

    /// As a float, for JSON (`1.5`).
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

/// `1`, `0.5`, `1.25`, `0.001`: the shortest decimal of the thousandths.
impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let fraction = self.0 % 1000;
        if fraction == 0 {
            return write!(f, "{whole}");
        }
        let digits = format!("{fraction:03}");
        write!(f, "{whole}.{}", digits.trim_end_matches('0'))
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cpus, D::Error> {
        let value = f64::deserialize(deserializer)?;
        if !value.is_finite() || value <= 0.0 || value > MAX_CPUS.as_f64() {
            return Err(serde::de::Error::custom(format!(
                "`{value}` is not a number of CPUs"
            )));
        }
        // In range (checked above), so the cast cannot truncate.
        Ok(Cpus((value * 1000.0).round() as u32))
    }
}

/// Checks a pids limit from the manifest.
pub fn check_pids(pids: i64) -> Result<u32, Refusal> {
    match u32::try_from(pids) {
        Ok(pids) if (MIN_PIDS..=MAX_PIDS).contains(&pids) => Ok(pids),
        _ => Err(Refusal {
            message: format!("`resources.pids` must be {MIN_PIDS} to {MAX_PIDS}, not {pids}"),
            hint: format!(
                "it counts the container's processes and threads; the default is {DEFAULT_PIDS}"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn memory(text: &str) -> String {
        match Memory::parse(text) {
            Ok(memory) => format!("{} = {memory}", memory.bytes()),
            Err(refusal) => format!("{}\nhint: {}", refusal.message, refusal.hint),
        }
    }

    #[test]
    fn memory_sizes_are_binary_in_any_spelling() {
        assert_eq!(memory("512m"), "536870912 = 512MiB");
        assert_eq!(memory("512MB"), "536870912 = 512MiB");
        assert_eq!(memory("512MiB"), "536870912 = 512MiB");
        assert_eq!(memory("2g"), "2147483648 = 2GiB");
        assert_eq!(memory("1.5GiB"), "1610612736 = 1536MiB");
        assert_eq!(memory(" 64 mib "), "67108864 = 64MiB");
        assert_eq!(memory("1t"), "1099511627776 = 1TiB");
        assert_eq!(memory("33554433"), "33554433 = 33554433");
        assert_eq!(memory("40000k"), "40960000 = 40000KiB");
    }

    #[test]
    fn memory_nonsense_is_refused_with_a_hint() {
        expect_test::expect![[r#"
            `resources.memory` `lots` is not a size
            hint: write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)
            `resources.memory` `512x` has an unknown unit `x`
            hint: write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)
            `resources.memory` `-1g` is not a size
            hint: write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)
            `resources.memory` `1..5g` is not a size
            hint: write a number and a unit: `512m`, `2g`, `1.5GiB` (k, m, g, t; binary, as in Docker)
            `resources.memory` `512` is below the minimum of 32MiB
            hint: a number without a unit is bytes: write `512m` for 512 MiB (at least `32MiB`)
            `resources.memory` `0g` is below the minimum of 32MiB
            hint: give an agent at least `32MiB`; the default is `2GiB`
            `resources.memory` `99999999t` is too large
            hint: the default is `2GiB`; a limit above the host's memory means no limit
        "#]]
        .assert_eq(
            &["lots", "512x", "-1g", "1..5g", "512", "0g", "99999999t"]
                .map(|text| memory(text) + "\n")
                .concat(),
        );
    }

    #[test]
    fn cpus_are_thousandths_and_refuse_nonsense() {
        let cpus = |text: &str| match Cpus::parse(text) {
            Ok(cpus) => format!("{} = {cpus}", cpus.millis()),
            Err(refusal) => format!("{}\nhint: {}", refusal.message, refusal.hint),
        };
        assert_eq!(cpus("1"), "1000 = 1");
        assert_eq!(cpus("0.5"), "500 = 0.5");
        assert_eq!(cpus("1.25"), "1250 = 1.25");
        assert_eq!(cpus("0.0125"), "13 = 0.013");
        assert_eq!(cpus("16"), "16000 = 16");
        expect_test::expect![[r#"
            `resources.cpus` `0` is below the minimum of 0.01 CPUs
            hint: write a positive number of CPUs, `0.5` for half a core, at least `0.01`; the default is `1`
            `resources.cpus` `-1` is not a number of CPUs
            hint: write a positive number of CPUs, `0.5` for half a core, at least `0.01`; the default is `1`
            `resources.cpus` `half` is not a number of CPUs
            hint: write a positive number of CPUs, `0.5` for half a core, at least `0.01`; the default is `1`
            `resources.cpus` `5000` is more than 1024 CPUs
            hint: a limit above the host's cores only means the agent is not throttled
        "#]]
        .assert_eq(&["0", "-1", "half", "5000"].map(|text| cpus(text) + "\n").concat());
    }

    #[test]
    fn pids_have_a_floor_and_a_ceiling() {
        assert_eq!(check_pids(16), Ok(16));
        assert_eq!(check_pids(4_194_304), Ok(4_194_304));
        let refusal = check_pids(5).unwrap_err();
        assert_eq!(
            refusal.message,
            "`resources.pids` must be 16 to 4194304, not 5"
        );
        assert!(check_pids(-1).is_err());
        assert!(check_pids(1 << 40).is_err());
    }

    #[test]
    fn resources_round_trip_through_json_in_canonical_form() {
        let resources = Resources {
            memory: Some(Memory::parse("1.5g").unwrap()),
            cpus: Some(Cpus::parse("0.25").unwrap()),
            pids: Some(64),
        };
        let json = serde_json::to_string(&resources).unwrap();
        assert_eq!(json, r#"{"memory":"1536MiB","cpus":0.25,"pids":64}"#);
        assert_eq!(serde_json::from_str::<Resources>(&json).unwrap(), resources);
        assert_eq!(
            serde_json::from_str::<Resources>("{}").unwrap(),
            Resources::default(),
            "specs written before `resources` existed read as the defaults"
        );
    }

    #[test]
    fn defaults_are_within_the_bounds() {
        assert!(DEFAULT_MEMORY >= MIN_MEMORY);
        assert!((MIN_CPUS..=MAX_CPUS).contains(&DEFAULT_CPUS));
        assert!((MIN_PIDS..=MAX_PIDS).contains(&DEFAULT_PIDS));
        assert_eq!(DEFAULT_MEMORY.to_string(), "2GiB");
        assert_eq!(DEFAULT_CPUS.to_string(), "1");
    }
}
