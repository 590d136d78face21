//! The Telegram channel as a runtime adapter (`channels::Adapter`): [`FACTORY`] builds it when a
//! chat uses `channel_type: telegram` (a missing token stops the start, naming
//! `nanoclaw auth set telegram`); the work is [`Telegram`]'s.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::api::Disposition;
use super::send::Outgoing;
use super::{CHANNEL_TYPE, Settings, Telegram};
use crate::channels::registry::Factory;
use crate::channels::{Adapter, Delivered, DeliveryError, Outbound, Start};
use crate::paths::Paths;

/// The registry entry: started only when some chat is a Telegram chat.
pub const FACTORY: Factory = Factory {
    channel_type: CHANNEL_TYPE,
    always: false,
    build,
};

fn build(paths: &Paths) -> anyhow::Result<Arc<dyn Adapter>> {
    let settings = Settings::resolve(paths)?;
    tracing::info!(token = %settings.source, api = %settings.api_url, "telegram bot token found");
    Ok(Arc::new(Telegram::new(settings)?))
}

impl Adapter for Telegram {
    fn channel_type(&self) -> &str {
        CHANNEL_TYPE
    }

    /// Forum topics are threads.
    fn supports_threads(&self) -> bool {
        true
    }

    fn start(self: Arc<Self>, start: Start) -> BoxFuture<'static, anyhow::Result<()>> {
        async move {
            self.start_with_answers(start.inbound, start.answers, start.stop)
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        self.shutdown().boxed()
    }

    fn deliver<'a>(
        &'a self,
        message: &'a Outbound,
    ) -> BoxFuture<'a, Result<Delivered, DeliveryError>> {
        async move {
            let outgoing = Outgoing {
                id: &message.id,
                chat: &message.platform_id,
                thread: message.thread_id.as_deref(),
                content: &message.content,
                files: &message.files,
            };
            match self.send(&outgoing).await {
                Ok(id) => Ok(Delivered::Sent(id)),
                Err(err) => Err(match err.disposition() {
                    Disposition::RetryAfter(after) => DeliveryError::RetryAfter(after),
                    Disposition::Permanent => DeliveryError::Permanent(err.to_string()),
                    Disposition::Transient => DeliveryError::Transient(err.to_string()),
                }),
            }
        }
        .boxed()
    }

    fn set_typing(&self, platform_id: &str, thread_id: Option<&str>) {
        self.typing(platform_id, thread_id);
    }
}
