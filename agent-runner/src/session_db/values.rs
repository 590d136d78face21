//! The enumerated column values of the session DBs, each declared once with its string form:
//! a message's [`Kind`] (`messages_in.kind`, `messages_out.kind`), an inbound message's
//! [`InboundStatus`] (`messages_in.status`), a claim's [`AckStatus`] (`processing_ack.status`)
//! and a delivery's [`DeliveryStatus`] (`delivered.status`).
//!
//! Statements bind these values (they implement `ToSql`/`FromSql`) instead of spelling the
//! strings; the schemas' `DEFAULT` literals are checked against them by a test.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// What a message is (v2's kinds,
/// docs/agent-runner.md#the-session-db-protocol-agent_runnersession_db).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A chat message.
    #[default]
    Chat,
    /// A chat message from a Chat SDK bridge.
    ChatSdk,
    /// A scheduled task's prompt.
    Task,
    /// A webhook payload (reserved).
    Webhook,
    /// A system action (outbound) or its response (inbound).
    System,
    /// A kind this version does not know, kept as read (a newer peer wrote it, or the
    /// container wrote garbage): the runner leaves it out of the prompt, the host records it
    /// failed.
    Unknown(String),
}

impl Kind {
    /// Every known kind, in their documented order.
    pub const KNOWN: [Kind; 5] = [
        Kind::Chat,
        Kind::ChatSdk,
        Kind::Task,
        Kind::Webhook,
        Kind::System,
    ];
    /// The kinds a container may write into `messages_out` (docs/security.md).
    pub const OUTBOUND: [Kind; 3] = [Kind::Chat, Kind::ChatSdk, Kind::System];

    /// The string form stored in the DB.
    pub fn as_str(&self) -> &str {
        match self {
            Kind::Chat => "chat",
            Kind::ChatSdk => "chat-sdk",
            Kind::Task => "task",
            Kind::Webhook => "webhook",
            Kind::System => "system",
            Kind::Unknown(text) => text,
        }
    }

    /// The kind of a stored string; anything unknown is kept as [`Kind::Unknown`].
    pub fn parse(text: &str) -> Kind {
        Kind::KNOWN
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .unwrap_or_else(|| Kind::Unknown(text.to_string()))
    }

    /// `chat` or `chat-sdk`: a message a person wrote.
    pub fn is_chat(&self) -> bool {
        matches!(self, Kind::Chat | Kind::ChatSdk)
    }
}

impl From<&str> for Kind {
    fn from(text: &str) -> Kind {
        Kind::parse(text)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an inbound message is (`messages_in.status`); only the host changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundStatus {
    /// Waiting for (or being processed by) the container.
    Pending,
    /// The container finished it (copied from its ack by the host).
    Completed,
    /// Given up after the retries (docs/runtime.md#the-sweep).
    Failed,
}

/// The container's claim on an inbound message (`processing_ack.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// Claimed: a query is working on it.
    Processing,
    /// Answered (or consumed: commands, errors).
    Completed,
    /// Given up by the container (v2 never writes it; the host reads it as finished).
    Failed,
    /// Given back: its turn could not reach the model's API. The host reschedules it with
    /// backoff, or marks it failed after the last try, as it does for a dead container's
    /// claims (docs/runtime.md#stuck-containers-and-retries); the container takes it again once
    /// it is due after that reschedule.
    Retry,
}

/// The outcome of delivering an outbound row (`delivered.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Delivered,
    /// Refused for good (a bad row, or the attempts ran out).
    Failed,
}

/// The one string form of each value of a closed enum, both ways.
macro_rules! string_forms {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string form stored in the DB.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value of a stored string.
            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|value| value.as_str() == text)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                $name::parse(text).ok_or_else(|| {
                    FromSqlError::Other(format!("unknown {} `{text}`", stringify!($name)).into())
                })
            }
        }
    };
}

string_forms!(InboundStatus {
    Pending => "pending",
    Completed => "completed",
    Failed => "failed",
});

string_forms!(AckStatus {
    Processing => "processing",
    Completed => "completed",
    Failed => "failed",
    Retry => "retry",
});

string_forms!(DeliveryStatus {
    Delivered => "delivered",
    Failed => "failed",
});

impl ToSql for Kind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Kind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Ok(Kind::parse(value.as_str()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_kept() {
        for kind in Kind::KNOWN {
            assert_eq!(Kind::parse(kind.as_str()), kind);
        }
        assert_eq!(Kind::parse("chat-sdk"), Kind::ChatSdk);
        assert_eq!(Kind::parse("fax"), Kind::Unknown("fax".into()));
        assert_eq!(Kind::parse("fax").as_str(), "fax");
        assert!(Kind::ChatSdk.is_chat() && !Kind::System.is_chat());
    }

    #[test]
    fn statuses_round_trip() {
        for status in InboundStatus::ALL {
            assert_eq!(InboundStatus::parse(status.as_str()), Some(*status));
        }
        for status in AckStatus::ALL {
            assert_eq!(AckStatus::parse(status.as_str()), Some(*status));
        }
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(InboundStatus::parse("paused"), None);
    }

    #[test]
    fn the_schema_defaults_are_the_declared_string_forms() {
        let schema = super::super::INBOUND_SCHEMA;
        assert!(schema.contains(&format!(
            "status TEXT DEFAULT '{}'",
            InboundStatus::Pending.as_str()
        )));
        assert!(schema.contains(&format!(
            "status TEXT NOT NULL DEFAULT '{}'",
            DeliveryStatus::Delivered.as_str()
        )));
    }
}
