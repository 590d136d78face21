//! The Telegram channel (`channel_type: telegram`; platform id = chat id): long polling with
//! `getUpdates`, the durable update offset, and delivery through the Bot API.

pub mod api;
pub mod cards;
pub mod format;
pub mod inbound;
pub mod offset;
pub mod poll;
pub mod send;
pub mod types;
