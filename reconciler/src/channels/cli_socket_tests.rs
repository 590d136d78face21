//! Unit tests of the CLI channel: delivery to readers and acknowledgements, the line codec,
//! and the connection limit on a real socket in a temp dir.

use super::*;

fn reply(id: &str, text: &str) -> Outbound {
    Outbound {
        id: id.into(),
        agent: Some("andy".into()),
        platform_id: "local".into(),
        thread_id: None,
        kind: "chat".into(),
        content: serde_json::json!({ "text": text }),
        in_reply_to: Some("m1:andy".into()),
        files: Vec::new(),
    }
}

/// A reader of `local` on connection `conn`, as a hello would make it.
fn reader(socket: &CliSocket, conn: u64, buffer: usize) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(buffer);
    socket.claim(conn, "local", tx);
    rx
}

#[test]
fn delivery_without_reader_stays_queued() {
    let socket = CliSocket::new("unused.sock");
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::NoReader
    );
    let mut rx = reader(&socket, 1, 4);
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    let line = rx.try_recv().unwrap();
    assert_eq!(
        line,
        r#"{"id":"r1","text":"hi","agent":"andy","in_reply_to":"m1:andy"}"#
    );
}

#[test]
fn issue_8_a_reply_is_delivered_only_once_its_reader_acknowledges_it() {
    let socket = CliSocket::new("unused.sock");
    let mut rx = reader(&socket, 1, 4);
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    rx.try_recv().unwrap();
    // Delivery polls again before the client answered: not sent twice, still not delivered.
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    assert!(rx.try_recv().is_err(), "not sent twice to one reader");
    assert!(!socket.ack("local", "other"), "an id never sent is ignored");
    assert!(socket.ack("local", "r1"));
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::Sent(None)
    );
    assert!(rx.try_recv().is_err());
}

#[test]
fn issue_8_a_reader_that_leaves_without_acknowledging_leaves_the_reply_queued() {
    let socket = CliSocket::new("unused.sock");
    let mut first = reader(&socket, 1, 4);
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    first.try_recv().unwrap();
    socket
        .chats
        .lock()
        .unwrap()
        .get_mut("local")
        .unwrap()
        .leave(1);
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::NoReader
    );
    let mut second = reader(&socket, 2, 4);
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    assert!(second.try_recv().unwrap().contains(r#""id":"r1""#));
}

#[test]
fn a_reader_that_does_not_keep_up_leaves_replies_queued_not_failed() {
    // A terminal that stops reading must not make delivery give up on its replies (3
    // failed attempts mark them failed for good): they wait until it reads or is replaced.
    let socket = CliSocket::new("unused.sock");
    let mut rx = reader(&socket, 1, 1);
    assert_eq!(
        socket.offer(&reply("r1", "one")).unwrap(),
        Delivered::AwaitingAck
    );
    assert_eq!(
        socket.offer(&reply("r2", "two")).unwrap(),
        Delivered::NoReader
    );
    rx.try_recv().unwrap();
    assert_eq!(
        socket.offer(&reply("r2", "two")).unwrap(),
        Delivered::AwaitingAck
    );
}

#[test]
fn a_newer_reader_supersedes_the_old_one_and_gets_what_it_did_not_acknowledge() {
    let socket = CliSocket::new("unused.sock");
    let mut old = reader(&socket, 1, 4);
    socket.offer(&reply("r1", "hi")).unwrap();
    old.try_recv().unwrap();
    let mut new = reader(&socket, 2, 4);
    let note = HostLine::parse(&old.try_recv().unwrap());
    assert!(
        matches!(
            note,
            Some(HostLine::Superseded {
                superseded: true,
                ..
            })
        ),
        "{note:?}"
    );
    assert_eq!(
        socket.offer(&reply("r1", "hi")).unwrap(),
        Delivered::AwaitingAck
    );
    assert!(new.try_recv().unwrap().contains(r#""id":"r1""#));
}

#[test]
fn a_notice_without_a_row_is_shown_like_a_reply() {
    let socket = CliSocket::new("unused.sock");
    let mut rx = reader(&socket, 1, 4);
    let mut notice = reply("notice-1", "cannot start");
    notice.in_reply_to = None;
    notice.agent = None;
    socket.offer(&notice).unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        r#"{"id":"notice-1","text":"cannot start"}"#
    );
}

#[tokio::test]
async fn issue_8_connections_beyond_the_limit_are_refused_with_an_error() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.sock");
    let socket = Arc::new(CliSocket::new(&path).with_max_connections(2));
    let (inbound_tx, _inbound_rx) = mpsc::channel(8);
    Arc::clone(&socket)
        .start(Start {
            inbound: inbound_tx,
            answers: tokio::sync::mpsc::channel(1).0,
            ready: Ready::new(|_| {}),
            stop: CancellationToken::new(),
        })
        .await
        .unwrap();
    let hello = |stream: UnixStream| async move {
        let (read, mut write) = stream.into_split();
        write.write_all(b"{\"hello\":{}}\n").await.unwrap();
        let mut line = String::new();
        BufReader::new(read).read_line(&mut line).await.unwrap();
        (line, write)
    };
    let (first, _keep_first) = hello(UnixStream::connect(&path).await.unwrap()).await;
    let (second, _keep_second) = hello(UnixStream::connect(&path).await.unwrap()).await;
    assert_eq!(
        first.trim(),
        r#"{"hello":{"platform_id":"local","protocol":2}}"#
    );
    assert!(second.contains("hello"), "{second}");
    let mut third = BufReader::new(UnixStream::connect(&path).await.unwrap());
    let mut line = String::new();
    third.read_line(&mut line).await.unwrap();
    assert!(line.contains("limit"), "{line}");
    line.clear();
    assert_eq!(third.read_line(&mut line).await.unwrap(), 0, "then closed");
    drop((_keep_first, _keep_second));
    socket.stop().await;
}

#[tokio::test]
async fn issue_7_a_socket_replaced_by_another_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.sock");
    let (_first, first_file) = bind(&path).unwrap();
    // Another process binds its own socket in the same place.
    let (_second, second_file) = bind(&path).unwrap();
    assert!(!first_file.remove_if_ours(), "not ours any more");
    assert!(path.exists(), "the other socket is left alone");
    assert!(second_file.remove_if_ours());
    assert!(!path.exists());
}

#[tokio::test]
async fn start_binds_the_socket_and_stop_ends_every_connection_and_removes_it() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.sock");
    let socket = Arc::new(CliSocket::new(&path));
    let (inbound_tx, mut inbound_rx) = mpsc::channel(8);
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    Arc::clone(&socket)
        .start(Start {
            inbound: inbound_tx,
            answers: tokio::sync::mpsc::channel(1).0,
            ready: Ready::new(move |chat| {
                let _ = ready_tx.send(chat);
            }),
            stop: CancellationToken::new(),
        })
        .await
        .unwrap();
    let stream = UnixStream::connect(&path).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"{\"hello\":{}}\n").await.unwrap();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    read.read_line(&mut line).await.unwrap();
    assert!(line.contains("hello"), "{line}");
    let arrived = ready_rx
        .recv()
        .await
        .expect("a reader arriving tells delivery");
    assert_eq!(
        (
            arrived.channel_type.as_str(),
            arrived.platform_id.as_str(),
            arrived.new_reader
        ),
        (CHANNEL_TYPE, DEFAULT_PLATFORM_ID, true),
        "a reader arriving tells delivery"
    );
    assert!(arrived.at_ms > 0, "with when it arrived");

    socket.stop().await;
    line.clear();
    assert_eq!(
        read.read_line(&mut line).await.unwrap(),
        0,
        "the connection is closed"
    );
    assert!(!path.exists(), "the socket file is removed");
    assert!(
        inbound_rx.recv().await.is_none(),
        "no clone of the inbound sender is left: the router can end"
    );
}

#[tokio::test]
async fn a_path_that_is_not_a_socket_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cli.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let (inbound_tx, _inbound_rx) = mpsc::channel(8);
    let err = Arc::new(CliSocket::new(&path))
        .start(Start {
            inbound: inbound_tx,
            answers: tokio::sync::mpsc::channel(1).0,
            ready: Ready::new(|_| {}),
            stop: CancellationToken::new(),
        })
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("binding") && text.contains("cli.sock"),
        "{text}"
    );
}

#[test]
fn files_sent_with_a_reply_are_saved_under_downloads_and_named_to_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let socket = CliSocket::new("unused.sock").with_downloads(&downloads);
    let mut rx = reader(&socket, 1, 4);
    let mut message = reply("msg-1", "");
    message.files = vec![crate::channels::OutFile {
        filename: "report.txt".into(),
        data: bytes::Bytes::from_static(b"the report"),
    }];
    assert_eq!(socket.offer(&message).unwrap(), Delivered::AwaitingAck);
    let saved = downloads.join("msg-1/report.txt");
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "the report");
    let line: serde_json::Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(
        line["files"],
        serde_json::json!([saved.display().to_string()])
    );
}
