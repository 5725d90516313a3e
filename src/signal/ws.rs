//! The WebSocket transport of the signaling protocol: frames in, frames out.
//! What the messages mean is [`super::session`]'s business.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use super::limits::{Limited, SessionSlot};
use super::session::{Flow, Session};
use super::{error_response, with_retry_after, AppState};
use cascade_protocol::{ErrorCode, ServerMessage, MAX_MESSAGE_BYTES};

/// WebSocket close codes (RFC 6455 section 7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_TOO_BIG: u16 = 1009;

/// How much a signaling socket reads at once. Tungstenite's default, 128
/// KiB, is allocated up front for every socket (the bulk of a participant's
/// memory outside its media connections); signaling messages are a few KiB,
/// and one larger than this (an SDP) is read in several reads.
const READ_BUFFER_BYTES: usize = 8 * 1024;

/// `GET /ws`: upgrade and run a signaling session, if the page's origin is
/// allowed and the peer's address may open another.
pub async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !valid_key(&headers) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Key must be 16 bytes in base64 (RFC 6455)",
        );
    }
    if !state.allowed_origins.admits(&headers) {
        return error_response(
            StatusCode::FORBIDDEN,
            "this page's origin may not open a signaling socket (the server's --allowed-origin)",
        );
    }
    let slot = match state.limits.open_session(peer.ip()) {
        Ok(slot) => slot,
        Err(limited) => return too_many(&limited),
    };
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| run(socket, state, peer, slot))
}

/// Whether the upgrade's `Sec-WebSocket-Key` is a base64 16-byte value, as
/// RFC 6455 section 4.2.1 requires (axum checks only that it is there).
fn valid_key(headers: &HeaderMap) -> bool {
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return false;
    };
    let key = key.as_bytes();
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    // 16 bytes are 22 base64 digits and "==", the last digit holding 2 bits.
    key.len() == 24
        && key[..22].iter().all(alphabet)
        && &key[22..] == b"=="
        && b"AQgw".contains(&key[21])
}

/// `429` with `Retry-After`.
fn too_many(limited: &Limited) -> Response {
    let response = error_response(StatusCode::TOO_MANY_REQUESTS, &limited.to_string());
    with_retry_after(response, limited.retry_after)
}

async fn run(socket: WebSocket, state: AppState, peer: SocketAddr, _slot: SessionSlot) {
    let (mut sink, mut stream) = socket.split();
    let join_timeout = state.timeouts.join;
    let mut session = Session::new(state, peer.ip());
    let join_deadline = tokio::time::sleep(join_timeout);
    tokio::pin!(join_deadline);
    // Whether the server sent a close frame, and so awaits the client's.
    let mut closing = false;
    loop {
        tokio::select! {
            () = &mut join_deadline, if !session.is_joined() => {
                let reply = ServerMessage::error(ErrorCode::Fatal, format!("no join within {} s", join_timeout.as_secs()));
                let _ = send(&mut sink, &reply).await;
                closing = sink.send(close(CLOSE_POLICY, "no join")).await.is_ok();
                break;
            }
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let reply = ServerMessage::error(ErrorCode::BadMessage, "binary frames are not supported; send JSON text");
                        if send(&mut sink, &reply).await.is_err() { break; }
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => continue, // ping/pong are answered by axum
                    Some(Err(e)) => {
                        if e.to_string().contains("too long") {
                            // The stream cannot be read past this frame: no
                            // close reply to wait for (the lingering close
                            // keeps the reset away, `super::linger`).
                            let _ = sink.send(close(CLOSE_TOO_BIG, "message too big")).await;
                        }
                        tracing::debug!(error = %e, "websocket read failed");
                        break;
                    }
                };
                let (reply, flow) = session.handle_text(text.as_str()).await;
                if let Some(reply) = reply {
                    if send(&mut sink, &reply).await.is_err() { break; }
                }
                if flow == Flow::Stop {
                    closing = sink.send(close(CLOSE_NORMAL, "left")).await.is_ok();
                    break;
                }
            }
            outgoing = session.next_server_message() => {
                match outgoing {
                    Some(message) => if send(&mut sink, &message).await.is_err() { break; },
                    // The worker removed us (timeout, shutdown); its last
                    // message said why.
                    None => {
                        closing = sink.send(close(CLOSE_GOING_AWAY, "removed")).await.is_ok();
                        break;
                    }
                }
            }
        }
    }
    session.end().await;
    if closing {
        await_close_reply(&mut stream).await;
    }
    let _ = sink.close().await;
}

/// How long the server waits for the client's close frame after sending its
/// own.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Completes the closing handshake (RFC 6455 section 7.1.1): reads, and
/// drops, what the client still sends until its close frame, the end of the
/// stream or the timeout. Closing the TCP connection before the client's
/// close frame arrived would answer it with a reset, and a reset can
/// destroy the server's last messages (why it removed the client) before
/// the client reads them.
async fn await_close_reply<S>(stream: &mut S)
where
    S: StreamExt<Item = Result<Message, axum::Error>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

async fn send<S>(sink: &mut S, message: &ServerMessage) -> Result<(), axum::Error>
where
    S: SinkExt<Message, Error = axum::Error> + Unpin,
{
    // Serializing our own message types cannot fail: they contain only
    // strings, numbers, booleans and lists.
    let json = serde_json::to_string(message).expect("server messages serialize");
    sink.send(Message::Text(json.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(value: &str) -> bool {
        let mut h = HeaderMap::new();
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_str(value).unwrap(),
        );
        valid_key(&h)
    }

    #[test]
    fn a_websocket_key_is_16_bytes_of_base64() {
        assert!(key("dGhlIHNhbXBsZSBub25jZQ=="), "RFC 6455's example");
        assert!(key("AAAAAAAAAAAAAAAAAAAAAA=="));
        assert!(!valid_key(&HeaderMap::new()), "missing");
        for bad in [
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ===",
            "dGhlIHNhbXBsZSBub25jZB==",
            "dGhlIHNhbXBsZSBub25j!Q==",
            "dGhlIHNhbXBsZSBub25jZQ==dGhl",
        ] {
            assert!(!key(bad), "{bad:?}");
        }
    }
}
