//! Scrubbing the real credential out of response bodies as they stream, so an upstream (or a
//! misconfigured fake, or a future API error message) that echoes the key never hands it to a
//! container.
//!
//! Streaming is kept: a chunk is passed on at once, except for a tail that could be the start of
//! the key, which waits for the next chunk. Server-sent events end in `\n\n`, which no key starts
//! with, so in practice nothing is held back.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};

/// What the key is replaced with.
pub const REPLACEMENT: &[u8] = b"[redacted]";

/// Replaces every occurrence of one secret in a byte stream given in chunks.
#[derive(Debug)]
pub struct Redactor {
    needle: Vec<u8>,
    /// Bytes that end a chunk and could begin the secret; emitted or replaced later.
    held: Vec<u8>,
}

impl Redactor {
    pub fn new(secret: &str) -> Redactor {
        Redactor {
            needle: secret.as_bytes().to_vec(),
            held: Vec::new(),
        }
    }

    /// The bytes of `chunk` (after any held ones) that are safe to pass on now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.needle.is_empty() {
            return chunk.to_vec();
        }
        let mut input = std::mem::take(&mut self.held);
        input.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(input.len());
        let mut start = 0;
        while let Some(found) = find(&input[start..], &self.needle) {
            out.extend_from_slice(&input[start..start + found]);
            out.extend_from_slice(REPLACEMENT);
            start += found + self.needle.len();
        }
        let rest = &input[start..];
        let hold = (1..self.needle.len().min(rest.len() + 1))
            .rev()
            .find(|&len| rest.ends_with(&self.needle[..len]))
            .unwrap_or(0);
        out.extend_from_slice(&rest[..rest.len() - hold]);
        self.held = rest[rest.len() - hold..].to_vec();
        out
    }

    /// What is still held at the end of the stream (it was not the secret after all).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A response body passed through a [`Redactor`], holding `guard` (the proxy's stream permit)
/// until the body ends or is dropped.
pub struct RedactedBody<B, G> {
    inner: B,
    redactor: Redactor,
    finished: bool,
    _guard: G,
}

impl<B, G> RedactedBody<B, G> {
    pub fn new(inner: B, secret: &str, guard: G) -> RedactedBody<B, G> {
        RedactedBody {
            inner,
            redactor: Redactor::new(secret),
            finished: false,
            _guard: guard,
        }
    }
}

impl<B, G> Body for RedactedBody<B, G>
where
    B: Body<Data = Bytes> + Unpin,
    G: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let safe = this.redactor.feed(&data);
                        if !safe.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(safe)))));
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    this.finished = true;
                    let rest = this.redactor.finish();
                    if !rest.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(rest)))));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(secret: &str, chunks: &[&str], expect: &str) {
        let mut redactor = Redactor::new(secret);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(redactor.feed(chunk.as_bytes()));
        }
        out.extend(redactor.finish());
        assert_eq!(String::from_utf8(out).unwrap(), expect);
    }

    #[test]
    fn the_secret_is_replaced_wherever_the_chunks_split_it() {
        check("sk-SECRET", &["a sk-SECRET b"], "a [redacted] b");
        check("sk-SECRET", &["a sk-SE", "CRET b"], "a [redacted] b");
        check(
            "sk-SECRET",
            &["s", "k", "-", "SECRET", "sk-SECRET"],
            "[redacted][redacted]",
        );
        check("sk-SECRET", &["ends with sk-SEC"], "ends with sk-SEC");
        check("sk-SECRET", &["sk-sk-SECRET"], "sk-[redacted]");
        check("", &["nothing to hide"], "nothing to hide");
    }

    #[test]
    fn event_boundaries_are_not_held_back() {
        let mut redactor = Redactor::new("sk-SECRET");
        let event = "event: ping\ndata: {\"type\":\"ping\"}\n\n";
        assert_eq!(redactor.feed(event.as_bytes()), event.as_bytes());
    }
}
