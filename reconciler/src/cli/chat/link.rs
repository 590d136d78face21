//! The client end of the CLI socket for `nanoclaw chat`: a blocking connection that speaks
//! [`crate::channels::cli_protocol`], and the set of reply ids already shown.
//!
//! It decides nothing about what to show; `chat.rs` (one-shot) and `interactive.rs` do.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Instant;

use crate::channels::cli_protocol::{self, ClientLine, Hello, HostLine};

/// One connection that reads (and acknowledges) the replies of one chat.
pub struct Link {
    reader: BufReader<UnixStream>,
    writer: Writer,
}

/// The sending half of a [`Link`], for a thread other than the reading one.
pub struct Writer(UnixStream);

/// What reading the next line gave.
#[derive(Debug)]
pub enum Next {
    Line(HostLine),
    /// The runtime closed the connection (it stopped, or crashed).
    Closed,
    /// The deadline passed first.
    TimedOut,
}

impl Link {
    /// Connects and says hello for `platform_id`: from now on this connection is the chat's
    /// reader.
    pub fn connect(socket: &Path, platform_id: &str) -> io::Result<Link> {
        let stream = UnixStream::connect(socket)?;
        let writer = Writer(stream.try_clone()?);
        let mut link = Link {
            reader: BufReader::new(stream),
            writer,
        };
        link.send(&ClientLine::Hello {
            hello: Hello {
                platform_id: Some(platform_id.to_string()),
                protocol: Some(cli_protocol::VERSION),
            },
        })?;
        Ok(link)
    }

    /// Connects without saying hello: the connection reads no chat (for a one-off line such as
    /// an answer, which must not take the chat from its reader).
    pub fn open(socket: &Path) -> io::Result<Link> {
        let stream = UnixStream::connect(socket)?;
        let writer = Writer(stream.try_clone()?);
        Ok(Link {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn send(&mut self, line: &ClientLine) -> io::Result<()> {
        self.writer.send(line)
    }

    /// Tells the runtime that reply `id` was shown (or was a duplicate of one shown).
    pub fn ack(&mut self, id: &str) -> io::Result<()> {
        self.writer.ack(id)
    }

    /// A second sending handle, for another thread.
    pub fn writer(&self) -> io::Result<Writer> {
        Ok(Writer(self.writer.0.try_clone()?))
    }

    /// The next line the runtime sends, waiting until `deadline` (forever without one).
    /// Lines this version does not know are skipped.
    pub fn next(&mut self, deadline: Option<Instant>) -> io::Result<Next> {
        loop {
            let timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Next::TimedOut);
                    }
                    Some(left)
                }
                None => None,
            };
            self.reader.get_ref().set_read_timeout(timeout)?;
            let mut buffer = String::new();
            match self.reader.read_line(&mut buffer) {
                Ok(0) => return Ok(Next::Closed),
                Ok(_) => {
                    if let Some(line) = HostLine::parse(&buffer) {
                        return Ok(Next::Line(line));
                    }
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Next::TimedOut);
                }
                Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {
                    return Ok(Next::Closed);
                }
                Err(err) => return Err(err),
            }
        }
    }
}

impl Writer {
    pub fn send(&mut self, line: &ClientLine) -> io::Result<()> {
        writeln!(self.0, "{}", line.to_line())
    }

    /// Tells the runtime that reply `id` was shown (or was a duplicate of one shown).
    pub fn ack(&mut self, id: &str) -> io::Result<()> {
        self.send(&ClientLine::Ack {
            ack: id.to_string(),
        })
    }

    /// Closes the connection both ways (the reading thread then sees it closed).
    pub fn close(&self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}

/// Reply ids shown by this process, across reconnects: the runtime may send a reply again
/// (after a reconnect, or a crash between showing and recording it), and it is shown once.
#[derive(Debug, Default)]
pub struct Shown {
    ids: HashSet<String>,
}

impl Shown {
    /// True the first time `id` is seen: show it. Either way it is acknowledged.
    pub fn first_time(&mut self, id: &str) -> bool {
        self.ids.insert(id.to_string())
    }
}
