//! `text_enum!`: the one declaration of an enum whose values are fixed words (`mention-sticky`,
//! `request_approval`, `full`), and [`TextEnum`], what every such enum offers.
//!
//! Each variant's text is written once, beside the variant; serde, the JSON Schema, validation's
//! "expected one of" hints, the DB reader and the migrations' CHECK test all take it from here.
//! This module declares; it must not know any particular enum.

/// An enum whose values are a fixed list of words, declared with `text_enum!`.
pub trait TextEnum: Copy + Eq + 'static {
    /// Every value, in declaration order (the order hints list them).
    const ALL: &'static [Self];
    /// Every value's text, in the same order.
    const NAMES: &'static [&'static str];

    /// The value's text, as written in manifests and stored in the DB.
    fn as_str(self) -> &'static str;

    /// The value written as `text`, if any (exact match).
    fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|value| value.as_str() == text)
    }

    /// `` `a`, `b`, `c` ``: the allowed values for a message.
    fn listed() -> String {
        Self::NAMES
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Declares an enum with one text per variant (`Variant = "text"`) and derives from it: the
/// `Clone, Copy, Debug, PartialEq, Eq, Hash` basics, serde (each variant renamed to its
/// text), `JsonSchema` (an `enum` of the texts, the doc comment as description), `as_str`,
/// `Display` and [`TextEnum`]. Further derives (`Default` with a `#[default]` variant,
/// `PartialOrd`) are written on the enum as usual.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone,
            Copy,
            Debug,
            PartialEq,
            Eq,
            Hash,
            serde::Serialize,
            serde::Deserialize,
            schemars::JsonSchema,
        )]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $text)]
                $variant,
            )+
        }

        impl $name {
            /// The value's text, as written in manifests and stored in the DB.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $crate::state::TextEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant),+];
            const NAMES: &'static [&'static str] = &[$($text),+];

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;
