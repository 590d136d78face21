//! The credential forwarder: listens on a loopback TCP port inside the container's own network
//! namespace and copies each connection to the host's credential proxy, whose Unix socket is
//! mounted into the container. Claude Code is pointed at `http://127.0.0.1:<port>` and never
//! needs a network route to the host (works with `network: none`).
//!
//! Plain std threads (the runner has no async runtime): one acceptor, two copiers per
//! connection. It understands nothing of HTTP; the proxy on the host does all checking.
//! It must not listen beyond loopback.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::{debug, info, warn};

/// The port the host tells Claude Code about (`ANTHROPIC_BASE_URL=http://127.0.0.1:<port>`)
/// unless `NANOCLAW_CREDENTIAL_PORT` says otherwise. Each container has its own loopback, so
/// one fixed number never collides.
pub const DEFAULT_PORT: u16 = 47_821;

/// Most connections forwarded at once; further ones are closed at once (Claude Code retries).
pub const MAX_CONNECTIONS: usize = 64;

/// A running forwarder. Its threads live as long as the process (the runner exits to stop).
#[derive(Debug)]
pub struct Forwarder {
    addr: SocketAddr,
}

impl Forwarder {
    /// Binds `127.0.0.1:<port>` (0 picks a free port) and starts forwarding to `socket`.
    pub fn start(socket: &Path, port: u16) -> io::Result<Forwarder> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let socket = socket.to_path_buf();
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name("forward-accept".into())
            .spawn(move || accept_loop(listener, socket, open))?;
        info!(%addr, "credential forwarder listening");
        Ok(Forwarder { addr })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn accept_loop(listener: TcpListener, socket: PathBuf, open: Arc<AtomicUsize>) {
    for accepted in listener.incoming() {
        let client = match accepted {
            Ok(client) => client,
            Err(err) => {
                warn!(error = %err, "credential forwarder: accept failed");
                // EMFILE and friends: give the process a moment instead of spinning.
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            warn!("credential forwarder: too many connections, one refused");
            continue;
        }
        let socket = socket.clone();
        let open_now = Arc::clone(&open);
        let spawned = std::thread::Builder::new()
            .name("forward-conn".into())
            .spawn(move || {
                if let Err(err) = forward(client, &socket) {
                    debug!(error = %err, "credential forwarder: connection ended with an error");
                }
                open_now.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(err) = spawned {
            open.fetch_sub(1, Ordering::SeqCst);
            warn!(error = %err, "credential forwarder: no thread for a connection");
        }
    }
}

/// Copies both ways until both sides are done; each direction's end is passed on as a
/// half-close, so a request body's end and a streamed response's end both arrive.
fn forward(client: TcpStream, socket: &Path) -> io::Result<()> {
    let upstream = match UnixStream::connect(socket) {
        Ok(upstream) => upstream,
        Err(err) => {
            warn!(socket = %socket.display(), error = %err, "credential forwarder: the proxy socket does not answer");
            return Err(err);
        }
    };
    let _ = client.set_nodelay(true);
    let mut client_read = client.try_clone()?;
    let mut upstream_write = upstream.try_clone()?;
    let uploader = std::thread::Builder::new()
        .name("forward-up".into())
        .spawn(move || {
            let res = io::copy(&mut client_read, &mut upstream_write);
            let _ = upstream_write.shutdown(Shutdown::Write);
            res
        })?;
    let mut upstream_read = upstream;
    let mut client_write = client;
    let down = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    // The client may keep its side open after the response; closing ours ends the uploader.
    let _ = client_write.shutdown(Shutdown::Read);
    let up = uploader.join().unwrap_or(Ok(0));
    down.and(up).map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    use super::*;

    #[test]
    fn bytes_cross_both_ways_with_half_close() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("proxy.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        // The far side: reads the whole request (to the half-close), answers it reversed.
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            stream.read_to_end(&mut request).unwrap();
            request.reverse();
            stream.write_all(&request).unwrap();
        });
        let forwarder = Forwarder::start(&socket, 0).unwrap();
        assert!(forwarder.base_url().starts_with("http://127.0.0.1:"));
        let mut client = TcpStream::connect(("127.0.0.1", forwarder.port())).unwrap();
        let request: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
        client.write_all(&request).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        let mut expected = request;
        expected.reverse();
        assert_eq!(answer, expected);
        server.join().unwrap();
    }

    #[test]
    fn a_missing_proxy_socket_closes_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let forwarder = Forwarder::start(&dir.path().join("absent.sock"), 0).unwrap();
        let mut client = TcpStream::connect(("127.0.0.1", forwarder.port())).unwrap();
        let mut answer = Vec::new();
        // Closed without a byte: the HTTP client sees a connection error and retries.
        assert_eq!(client.read_to_end(&mut answer).unwrap_or(0), 0);
    }
}
