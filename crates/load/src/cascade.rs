//! The bot flavour that speaks Cascade's WebSocket protocol
//! (`docs/PROTOCOL.md`): `join`, then a publish offer of its own, answers to
//! every subscribe offer, `leave` at the end. With a maximum layer it sends a
//! `video_preference` of that layer's size for every remote video once; it
//! stops and starts its own simulcast layers as `publish_layers` says.

use std::collections::HashSet;
use std::time::Instant;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::media::{Media, Signaling};
use super::{AbortOnDrop, BotError, BotOptions, BotReport};
use cascade_protocol::{ClientMessage, ServerMessage, TrackKind, PROTOCOL_VERSION};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Joins, runs the media loop, leaves.
pub(super) async fn run(opts: BotOptions) -> Result<BotReport, BotError> {
    let mut media = Media::new(opts, Instant::now());
    let url = format!("ws://{}/ws", media.opts.http_addr);
    let (ws, _) = tokio_tungstenite::connect_async(url).await?;
    let (tx, rx) = ws.split();
    let (messages_tx, messages) = mpsc::channel(64);
    let reader = AbortOnDrop(tokio::spawn(read_messages(rx, messages_tx)));
    let mut signaling = CascadeSignaling {
        tx,
        messages,
        preferred: HashSet::new(),
        _reader: reader,
    };
    let join = ClientMessage::Join {
        version: PROTOCOL_VERSION,
        room: media.opts.room.clone(),
        name: media.opts.name.clone(),
        token: None,
    };
    signaling.send(&join).await?;
    media.drive(&mut signaling).await?;
    Ok(media.report)
}

/// Reads and parses server messages on a task of its own.
///
/// Polling the WebSocket stream from the media loop would be simpler, but
/// tungstenite zero-fills its whole read buffer (128 KiB) on every poll:
/// that memset was a third of the load generator's CPU.
async fn read_messages(mut rx: SplitStream<Ws>, tx: mpsc::Sender<Result<ServerMessage, BotError>>) {
    loop {
        let item = match rx.next().await {
            None | Some(Ok(Message::Close(_))) => return,
            Some(Err(e)) => Err(e.into()),
            Some(Ok(Message::Text(text))) => {
                serde_json::from_str(text.as_str()).map_err(|e| BotError::Protocol(e.to_string()))
            }
            Some(Ok(_)) => continue,
        };
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

struct CascadeSignaling {
    tx: SplitSink<Ws, Message>,
    messages: mpsc::Receiver<Result<ServerMessage, BotError>>,
    /// Remote videos a `video_preference` was sent for.
    preferred: HashSet<String>,
    _reader: AbortOnDrop,
}

impl CascadeSignaling {
    async fn send(&mut self, message: &ClientMessage) -> Result<(), BotError> {
        // Client messages are plain data and always serialize.
        let json = serde_json::to_string(message).expect("client messages serialize");
        self.tx.send(Message::Text(json.into())).await?;
        Ok(())
    }
}

impl Signaling for CascadeSignaling {
    type Message = ServerMessage;

    async fn recv(&mut self) -> Result<Option<ServerMessage>, BotError> {
        self.messages.recv().await.transpose()
    }

    async fn handle(&mut self, media: &mut Media, message: ServerMessage) -> Result<(), BotError> {
        match message {
            ServerMessage::Joined { participant_id, .. } => {
                media.report.participant_id = Some(participant_id);
                if media.publishes() {
                    let sdp = media.create_publish_offer()?;
                    self.send(&ClientMessage::PublishOffer {
                        sdp,
                        sources: Default::default(),
                    })
                    .await?;
                }
            }
            ServerMessage::PublishAnswer { sdp } => media.accept_publish_answer(&sdp)?,
            ServerMessage::SubscribeOffer { sdp, tracks } => {
                let sdp = media.accept_subscribe_offer(&sdp)?;
                self.send(&ClientMessage::SubscribeAnswer { sdp }).await?;
                let Some(layer) = media.opts.max_layer else {
                    return Ok(());
                };
                let (width, height) = layer.size();
                for track in tracks.into_iter().filter(|t| t.kind == TrackKind::Video) {
                    if self.preferred.insert(track.track_id.clone()) {
                        let preference = ClientMessage::VideoPreference {
                            track_id: track.track_id,
                            visible: true,
                            width: width.into(),
                            height: height.into(),
                        };
                        self.send(&preference).await?;
                    }
                }
            }
            ServerMessage::PublishLayers { mid, layers } => {
                let layers: Vec<(String, bool)> =
                    layers.into_iter().map(|l| (l.rid, l.active)).collect();
                media.set_publish_layers(&mid, &layers);
            }
            ServerMessage::TrackPaused { .. } => media.report.tracks_paused += 1,
            ServerMessage::TrackResumed { .. } => media.report.tracks_resumed += 1,
            ServerMessage::ParticipantLeft { participant_id } => {
                media.report.participants_left.push(participant_id);
            }
            ServerMessage::Error { message, .. } => media.report.errors.push(message),
            _ => {}
        }
        Ok(())
    }

    async fn close(&mut self) {
        let _ = self.send(&ClientMessage::Leave).await;
        let _ = self.tx.close().await;
    }
}
