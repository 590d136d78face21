//! Container exits → delivery: when a container ends, its session is drained at once, so what
//! it wrote last goes out without waiting for a file event or the backstop. A tokio task on the
//! runner's exit broadcast (bounded by the runner); when it lagged behind, every active session
//! is drained instead. The waker reacts to the same exits on its own receiver.

use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::work::{Inbox, Work};
use crate::containers::Exited;

/// Forwards exits to delivery until `stop` (or the runner is gone).
pub async fn forward(
    mut exits: broadcast::Receiver<Exited>,
    delivery: Inbox,
    stop: CancellationToken,
) {
    loop {
        let exit = tokio::select! {
            () = stop.cancelled() => break,
            exit = exits.recv() => exit,
        };
        match exit {
            Ok(exit) => delivery.send(Work::Session {
                agent: exit.agent,
                session: exit.session_id,
            }),
            Err(RecvError::Lagged(_)) => delivery.send(Work::All),
            Err(RecvError::Closed) => break,
        }
    }
}
