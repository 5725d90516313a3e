//! A real Cascade server on ephemeral loopback ports, plus a raw WebSocket
//! client for speaking (and mis-speaking) the signaling protocol.

use std::net::SocketAddr;
use std::time::Duration;

use cascade::config::Config;
use cascade::server::Server;
use cascade_protocol::ServerMessage;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Starts a server with `workers` media workers; `tweak` may adjust the config.
pub async fn start(workers: usize, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::loopback(workers);
    tweak(&mut config);
    cascade::server::start(config).await.expect("server starts")
}

/// A raw signaling connection.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(server: &Server) -> Ws {
        Ws::try_connect(server).await.expect("ws connects")
    }

    /// Connects, or returns the HTTP status the upgrade was refused with.
    pub async fn try_connect(server: &Server) -> Result<Ws, u16> {
        Ws::try_connect_to(server.http_addr()).await
    }

    /// Connects to a server at `addr` (one this test did not start
    /// in-process, e.g. the `cascade` binary).
    pub async fn connect_to(addr: SocketAddr) -> Ws {
        Ws::try_connect_to(addr).await.expect("ws connects")
    }

    async fn try_connect_to(addr: SocketAddr) -> Result<Ws, u16> {
        let url = format!("ws://{addr}/ws");
        match tokio_tungstenite::connect_async(url).await {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(response.status().as_u16())
            }
            Err(e) => panic!("ws connect failed: {e}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_json(&mut self, value: serde_json::Value) {
        self.send_text(&value.to_string()).await;
    }

    /// The next server message, or `None` if the socket closed. Panics after
    /// 10 s of silence.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("a server message within 10 s");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        serde_json::from_str(text.as_str()).expect("server sends valid JSON"),
                    )
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Skips messages until one matches.
    pub async fn recv_until(
        &mut self,
        mut want: impl FnMut(&ServerMessage) -> bool,
    ) -> ServerMessage {
        loop {
            let m = self.recv().await.expect("socket still open");
            if want(&m) {
                return m;
            }
        }
    }

    /// Expects an `error` with `code` next (skipping other messages).
    pub async fn expect_error(&mut self, code: &str) -> String {
        match self
            .recv_until(|m| matches!(m, ServerMessage::Error { .. }))
            .await
        {
            ServerMessage::Error { code: c, message } => {
                let got = serde_json::to_value(c).unwrap();
                assert_eq!(got, code, "error code (message: {message})");
                message
            }
            _ => unreachable!(),
        }
    }

    /// Checks the connection is still usable with a ping.
    pub async fn assert_alive(&mut self) {
        self.send_json(serde_json::json!({"type": "ping"})).await;
        self.recv_until(|m| *m == ServerMessage::Pong).await;
    }

    /// Joins `room` and returns the participant id.
    pub async fn join(&mut self, room: &str, name: &str) -> String {
        self.send_json(
            serde_json::json!({"type": "join", "version": 1, "room": room, "name": name}),
        )
        .await;
        self.joined().await
    }

    /// Joins `room` with an access token and returns the participant id.
    pub async fn join_with_token(&mut self, room: &str, name: &str, token: &str) -> String {
        self.send_json(serde_json::json!(
            {"type": "join", "version": 1, "room": room, "name": name, "token": token}
        ))
        .await;
        self.joined().await
    }

    /// Waits for `joined` and returns the participant id.
    pub async fn joined(&mut self) -> String {
        match self
            .recv_until(|m| matches!(m, ServerMessage::Joined { .. }))
            .await
        {
            ServerMessage::Joined { participant_id, .. } => participant_id,
            _ => unreachable!(),
        }
    }
}
