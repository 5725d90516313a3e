//! The bot flavour that drives the Janus VideoRoom plugin over Janus' HTTP
//! API, so the same synthetic media and the same checks run against a peer
//! SFU (Debian `janus`, see `scripts/bench-janus.sh`).
//!
//! Each bot is what the Janus demo page is: one Janus session, a
//! "publisher" handle that joins the room (and publishes when the bot
//! does) and learns who publishes, and one multistream "subscriber" handle
//! that subscribes to every other publisher as it appears. Janus offers on
//! the subscriber handle and the bot answers with `start`, just like
//! Cascade's subscribe connection. Asynchronous answers and events arrive
//! on a long poll (`GET /janus/{session}`), read by a task of its own.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::http::BaseUrl;
use super::media::{Media, Signaling};
use super::{AbortOnDrop, BotError, BotOptions, BotReport};

/// Bots publish with feed id `FEED_BASE + index`, so feeds are predictable.
pub const FEED_BASE: u64 = 1_000_000;

/// Time limit of an ordinary request (the long poll has its own).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Janus answers an idle long poll after 30 s.
const POLL_TIMEOUT: Duration = Duration::from_secs(40);
/// Events fetched per long-poll round trip.
const POLL_MAX_EVENTS: usize = 16;

/// A VideoRoom room on a Janus server.
#[derive(Debug, Clone)]
pub struct JanusRoom {
    pub url: BaseUrl,
    pub room: u64,
}

impl JanusRoom {
    /// Creates room `room` for up to `publishers` publishers: no bitrate cap,
    /// no periodic FIR, Opus + VP8 (what the bots send).
    pub async fn create(url: BaseUrl, room: u64, publishers: usize) -> Result<Self, BotError> {
        let admin = Admin::open(&url).await?;
        let body = json!({
            "request": "create", "room": room, "publishers": publishers,
            "bitrate": 0, "fir_freq": 0, "audiocodec": "opus", "videocodec": "vp8",
            "notify_joining": false, "permanent": false,
        });
        let result = admin.request(body).await;
        admin.close().await;
        let data = result?;
        if data["videoroom"] != "created" {
            return Err(BotError::Protocol(format!("room not created: {data}")));
        }
        Ok(JanusRoom { url, room })
    }

    /// Destroys the room (best effort).
    pub async fn destroy(&self) {
        if let Ok(admin) = Admin::open(&self.url).await {
            let _ = admin
                .request(json!({"request": "destroy", "room": self.room}))
                .await;
            admin.close().await;
        }
    }
}

/// A session + handle for synchronous room management requests.
struct Admin {
    url: BaseUrl,
    session: u64,
    handle: u64,
}

impl Admin {
    async fn open(url: &BaseUrl) -> Result<Self, BotError> {
        let session = create_session(url).await?;
        let handle = attach(url, session).await?;
        Ok(Admin {
            url: url.clone(),
            session,
            handle,
        })
    }

    /// A synchronous plugin request; returns `plugindata.data`.
    async fn request(&self, body: Value) -> Result<Value, BotError> {
        let suffix = format!("/{}/{}", self.session, self.handle);
        let reply = call(
            &self.url,
            &suffix,
            json!({"janus": "message", "body": body}),
        )
        .await?;
        let data = reply["plugindata"]["data"].clone();
        if let Some(error) = data.get("error") {
            return Err(BotError::Protocol(format!("videoroom: {error}")));
        }
        Ok(data)
    }

    async fn close(self) {
        let _ = call(
            &self.url,
            &format!("/{}", self.session),
            json!({"janus": "destroy"}),
        )
        .await;
    }
}

/// Joins `room` as bot `opts.index`, runs the media loop, leaves.
pub async fn run(opts: BotOptions, room: JanusRoom) -> Result<BotReport, BotError> {
    let mut media = Media::new(opts, Instant::now());
    let url = room.url.clone();
    let session = create_session(&url).await?;
    let (tx, events) = mpsc::channel(256);
    let poller = AbortOnDrop(tokio::spawn(poll_events(url.clone(), session, tx)));
    let publisher = attach(&url, session).await?;
    let feed = FEED_BASE + media.opts.index as u64;
    let mut signaling = JanusSignaling {
        url,
        session,
        room: room.room,
        feed,
        publisher,
        subscriber: None,
        subscribed: HashSet::new(),
        events,
        _poller: poller,
    };
    let join = json!({
        "request": "join", "ptype": "publisher", "room": room.room,
        "id": feed, "display": media.opts.name,
    });
    signaling.message(publisher, join, None).await?;
    media.drive(&mut signaling).await?;
    Ok(media.report)
}

struct JanusSignaling {
    url: BaseUrl,
    session: u64,
    room: u64,
    feed: u64,
    publisher: u64,
    subscriber: Option<u64>,
    /// Feeds already asked for on the subscriber handle.
    subscribed: HashSet<u64>,
    events: mpsc::Receiver<Value>,
    _poller: AbortOnDrop,
}

impl JanusSignaling {
    /// Sends a plugin message (and SDP) on `handle`; the answer is an event.
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<(), BotError> {
        let mut request = json!({"janus": "message", "body": body});
        if let Some(jsep) = jsep {
            request["jsep"] = jsep;
        }
        call(&self.url, &format!("/{}/{handle}", self.session), request).await?;
        Ok(())
    }

    /// Our SDP carries our candidates: tell Janus there are no more.
    async fn end_of_candidates(&self, handle: u64) -> Result<(), BotError> {
        let request = json!({"janus": "trickle", "candidate": {"completed": true}});
        call(&self.url, &format!("/{}/{handle}", self.session), request).await?;
        Ok(())
    }

    /// Subscribes to every feed in `publishers` not asked for yet.
    async fn subscribe(&mut self, publishers: &Value) -> Result<(), BotError> {
        let Some(list) = publishers.as_array() else {
            return Ok(());
        };
        let feeds: Vec<u64> = list
            .iter()
            .filter_map(|p| p["id"].as_u64())
            .filter(|f| *f != self.feed && self.subscribed.insert(*f))
            .collect();
        if feeds.is_empty() {
            return Ok(());
        }
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        match self.subscriber {
            // Janus queues this while a renegotiation is under way and
            // sends one offer for everything asked.
            Some(handle) => {
                let body = json!({"request": "subscribe", "streams": streams});
                self.message(handle, body, None).await
            }
            None => {
                let handle = attach(&self.url, self.session).await?;
                self.subscriber = Some(handle);
                let body = json!({
                    "request": "join", "ptype": "subscriber", "room": self.room,
                    "streams": streams,
                });
                self.message(handle, body, None).await
            }
        }
    }

    async fn on_publisher_event(
        &mut self,
        media: &mut Media,
        data: &Value,
        jsep: Option<&Value>,
    ) -> Result<(), BotError> {
        if data["videoroom"] == "joined" {
            media.report.participant_id = Some(self.feed.to_string());
            if media.publishes() {
                let sdp = media.create_publish_offer()?;
                let jsep = json!({"type": "offer", "sdp": sdp});
                self.message(self.publisher, json!({"request": "publish"}), Some(jsep))
                    .await?;
                self.end_of_candidates(self.publisher).await?;
            }
        }
        if let Some(publishers) = data.get("publishers") {
            self.subscribe(publishers).await?;
        }
        if let Some(left) = data.get("leaving").or_else(|| data.get("unpublished")) {
            if let Some(id) = left.as_u64() {
                media.report.participants_left.push(id.to_string());
            }
        }
        if let Some(jsep) = jsep.filter(|j| j["type"] == "answer") {
            let sdp = jsep["sdp"].as_str().unwrap_or_default();
            media.accept_publish_answer(sdp)?;
        }
        Ok(())
    }

    async fn on_subscriber_event(
        &mut self,
        media: &mut Media,
        handle: u64,
        jsep: Option<&Value>,
    ) -> Result<(), BotError> {
        let Some(jsep) = jsep.filter(|j| j["type"] == "offer") else {
            return Ok(());
        };
        let first = !media.has_subscribe_connection();
        let sdp = media.accept_subscribe_offer(jsep["sdp"].as_str().unwrap_or_default())?;
        let answer = json!({"type": "answer", "sdp": sdp});
        self.message(handle, json!({"request": "start"}), Some(answer))
            .await?;
        if first {
            self.end_of_candidates(handle).await?;
        }
        Ok(())
    }
}

impl Signaling for JanusSignaling {
    type Message = Value;

    async fn recv(&mut self) -> Result<Option<Value>, BotError> {
        Ok(self.events.recv().await)
    }

    async fn handle(&mut self, media: &mut Media, event: Value) -> Result<(), BotError> {
        let sender = event["sender"].as_u64();
        match event["janus"].as_str() {
            Some("event") => {
                let data = &event["plugindata"]["data"];
                if let Some(error) = data.get("error") {
                    media.report.errors.push(error.to_string());
                }
                let jsep = event.get("jsep");
                if sender == Some(self.publisher) {
                    self.on_publisher_event(media, data, jsep).await?;
                } else if let Some(handle) = sender.filter(|s| Some(*s) == self.subscriber) {
                    self.on_subscriber_event(media, handle, jsep).await?;
                }
            }
            Some("hangup") | Some("detached") => {
                let reason = event["reason"].as_str().unwrap_or("no reason");
                media.report.errors.push(format!("janus hung up: {reason}"));
            }
            Some("error") => media.report.errors.push(event["error"].to_string()),
            _ => {} // webrtcup, media, slowlink, keepalive, ...
        }
        Ok(())
    }

    async fn close(&mut self) {
        let _ = call(
            &self.url,
            &format!("/{}", self.session),
            json!({"janus": "destroy"}),
        )
        .await;
    }
}

async fn create_session(url: &BaseUrl) -> Result<u64, BotError> {
    let reply = call(url, "", json!({"janus": "create"})).await?;
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| BotError::Protocol(format!("no session id in {reply}")))
}

async fn attach(url: &BaseUrl, session: u64) -> Result<u64, BotError> {
    let request = json!({"janus": "attach", "plugin": "janus.plugin.videoroom"});
    let reply = call(url, &format!("/{session}"), request).await?;
    reply["data"]["id"]
        .as_u64()
        .ok_or_else(|| BotError::Protocol(format!("no handle id in {reply}")))
}

/// POSTs a Janus API request with a fresh transaction id; a Janus-level
/// error becomes an `Err`.
async fn call(url: &BaseUrl, suffix: &str, mut request: Value) -> Result<Value, BotError> {
    request["transaction"] = json!(format!("{:016x}", rand::random::<u64>()));
    let reply = url.post(suffix, &request, REQUEST_TIMEOUT).await?;
    if reply["janus"] == "error" {
        return Err(BotError::Protocol(format!("janus: {}", reply["error"])));
    }
    Ok(reply)
}

/// Long-polls the session's events into `tx` until the bot goes away.
async fn poll_events(url: BaseUrl, session: u64, tx: mpsc::Sender<Value>) {
    let suffix = format!("/{session}?maxev={POLL_MAX_EVENTS}");
    // Bounded: each round trip lasts at most POLL_TIMEOUT and the bot's own
    // duration bounds how long the task is kept (it is aborted on drop).
    loop {
        match url.get(&suffix, POLL_TIMEOUT).await {
            Ok(Value::Array(events)) => {
                for event in events {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Ok(event) => {
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(session, error = %e, "janus long poll failed");
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
