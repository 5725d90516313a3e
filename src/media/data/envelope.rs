//! The data-channel envelope of `docs/PROTOCOL.md` ("Data channels"): how a
//! message on a participant's `cascade-reliable` or `cascade-lossy` channel
//! says where it goes, and how the relayed copy says who sent it.
//!
//! A text message is one JSON object whose `data` is the application's
//! string. A binary message is a 2-byte big-endian header length, the header
//! (a JSON object without `data`), then the application's bytes untouched.
//! Client to server the header has the optional `topic` and `to` (identities
//! or participant ids); server to client it has `from` (the sender's
//! participant id), `identity` when the sender has one, and `topic`.
//!
//! Public so that bots and tests speak the same format as the relay.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// Label of the ordered, reliable channel a client opens on its publish
/// connection.
pub const RELIABLE_LABEL: &str = "cascade-reliable";
/// Label of the unordered channel without retransmissions (`maxRetransmits: 0`).
pub const LOSSY_LABEL: &str = "cascade-lossy";
/// Largest message (envelope included) the server relays, in bytes.
pub const MAX_DATA_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest `topic`, in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;
/// Most entries in `to`.
pub const MAX_DESTINATIONS: usize = 64;

/// The two relayed channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataChannelKind {
    Reliable,
    Lossy,
}

impl DataChannelKind {
    pub const ALL: [DataChannelKind; 2] = [DataChannelKind::Reliable, DataChannelKind::Lossy];

    /// The channel of this label, if it is one the server relays.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            RELIABLE_LABEL => Some(DataChannelKind::Reliable),
            LOSSY_LABEL => Some(DataChannelKind::Lossy),
            _ => None,
        }
    }

    /// As in metric labels: `reliable` or `lossy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DataChannelKind::Reliable => "reliable",
            DataChannelKind::Lossy => "lossy",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The application's part of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload<'a> {
    Text(Cow<'a, str>),
    Binary(&'a [u8]),
}

/// A message as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData<'a> {
    pub topic: Option<Cow<'a, str>>,
    /// Identities or participant ids; empty: everyone else in the room.
    pub to: Vec<Cow<'a, str>>,
    pub payload: Payload<'a>,
}

/// A relayed message as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedData<'a> {
    pub from: Cow<'a, str>,
    pub identity: Option<Cow<'a, str>>,
    pub topic: Option<Cow<'a, str>>,
    pub payload: Payload<'a>,
}

/// Why a message was not relayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataError {
    /// Not the envelope above (the reason says how).
    Malformed(String),
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataError::Malformed(why) => write!(f, "malformed data message: {why}"),
        }
    }
}

impl std::error::Error for DataError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientHeader<'a> {
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    data: Option<Cow<'a, str>>,
}

#[derive(Serialize, Deserialize)]
struct RelayHeader<'a> {
    #[serde(borrow)]
    from: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    identity: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    data: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct ClientHeaderOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    to: &'a [Cow<'a, str>],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
}

fn malformed(why: impl Into<String>) -> DataError {
    DataError::Malformed(why.into())
}

/// Splits a binary message into its header and payload.
fn split_binary(bytes: &[u8]) -> Result<(&[u8], &[u8]), DataError> {
    let [hi, lo, rest @ ..] = bytes else {
        return Err(malformed(
            "a binary message starts with a 2-byte header length",
        ));
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    if rest.len() < len {
        return Err(malformed("the header is longer than the message"));
    }
    Ok(rest.split_at(len))
}

/// The JSON header of a message (the whole of a text message) and the
/// payload bytes after it (none for text).
fn read_header<'a, H: Deserialize<'a>>(
    binary: bool,
    bytes: &'a [u8],
) -> Result<(H, &'a [u8]), DataError> {
    let (header, payload) = if binary {
        split_binary(bytes)?
    } else {
        (bytes, &[][..])
    };
    let header = serde_json::from_slice(header).map_err(|e| malformed(format!("header: {e}")))?;
    Ok((header, payload))
}

/// Parses a message a client sent on a relayed channel (`binary`: its SCTP
/// payload type said binary).
pub fn parse_client(binary: bool, bytes: &[u8]) -> Result<ClientData<'_>, DataError> {
    let (header, payload): (ClientHeader, _) = read_header(binary, bytes)?;
    let payload = match (binary, header.data) {
        (true, None) => Payload::Binary(payload),
        (false, Some(text)) => Payload::Text(text),
        (true, Some(_)) => return Err(malformed("a binary message's header has no `data`")),
        (false, None) => return Err(malformed("a text message needs a string `data`")),
    };
    if header
        .topic
        .as_ref()
        .is_some_and(|t| t.len() > MAX_TOPIC_BYTES)
    {
        return Err(malformed(format!(
            "`topic` is over {MAX_TOPIC_BYTES} bytes"
        )));
    }
    let to = header.to.unwrap_or_default();
    if to.len() > MAX_DESTINATIONS {
        return Err(malformed(format!(
            "`to` lists over {MAX_DESTINATIONS} destinations"
        )));
    }
    Ok(ClientData {
        topic: header.topic,
        to,
        payload,
    })
}

/// Writes the envelope of a message as it is relayed from `from` (with its
/// `identity`) into `out` (cleared first); returns whether it is binary.
pub fn encode_relayed(
    from: &str,
    identity: Option<&str>,
    message: &ClientData<'_>,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let topic = message.topic.as_deref().map(Cow::Borrowed);
    let identity = identity.map(Cow::Borrowed);
    let from = Cow::Borrowed(from);
    match &message.payload {
        Payload::Text(text) => {
            let header = RelayHeader {
                from,
                identity,
                topic,
                data: Some(Cow::Borrowed(text)),
            };
            serde_json::to_writer(&mut *out, &header).expect("serializing to a Vec");
            false
        }
        Payload::Binary(payload) => {
            let header = RelayHeader {
                from,
                identity,
                topic,
                data: None,
            };
            write_binary(out, &header, payload);
            true
        }
    }
}

fn write_binary(out: &mut Vec<u8>, header: &impl Serialize, payload: &[u8]) {
    out.extend_from_slice(&[0, 0]);
    serde_json::to_writer(&mut *out, header).expect("serializing to a Vec");
    let len = u16::try_from(out.len() - 2).expect("a header is far below 64 KiB");
    out[..2].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Encodes a message as a client sends it; returns whether it is binary.
pub fn encode_client(message: &ClientData<'_>, out: &mut Vec<u8>) -> bool {
    out.clear();
    let topic = message.topic.as_deref();
    match &message.payload {
        Payload::Text(text) => {
            let header = ClientHeaderOut {
                topic,
                to: &message.to,
                data: Some(text),
            };
            serde_json::to_writer(&mut *out, &header).expect("serializing to a Vec");
            false
        }
        Payload::Binary(payload) => {
            let header = ClientHeaderOut {
                topic,
                to: &message.to,
                data: None,
            };
            write_binary(out, &header, payload);
            true
        }
    }
}

/// Parses a relayed message, as a client does.
pub fn parse_relayed(binary: bool, bytes: &[u8]) -> Result<RelayedData<'_>, DataError> {
    let (header, payload): (RelayHeader, _) = read_header(binary, bytes)?;
    let payload = match (binary, header.data) {
        (true, None) => Payload::Binary(payload),
        (false, Some(text)) => Payload::Text(text),
        _ => return Err(malformed("`data` in the wrong kind of message")),
    };
    Ok(RelayedData {
        from: header.from,
        identity: header.identity,
        topic: header.topic,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_messages_parse_with_topic_and_destinations() {
        let m = parse_client(
            false,
            br#"{"data":"hi \"you\"","topic":"chat","to":["bob"]}"#,
        )
        .unwrap();
        assert_eq!(m.payload, Payload::Text("hi \"you\"".into()));
        assert_eq!(m.topic.as_deref(), Some("chat"));
        assert_eq!(m.to, vec![Cow::Borrowed("bob")]);
    }

    #[test]
    fn binary_messages_keep_their_payload_bytes() {
        let mut bytes = Vec::new();
        let sent = ClientData {
            topic: Some("state".into()),
            to: vec![],
            payload: Payload::Binary(&[0, 1, 2, 255]),
        };
        assert!(encode_client(&sent, &mut bytes));
        let got = parse_client(true, &bytes).unwrap();
        assert_eq!(got, sent);
    }

    #[test]
    fn relayed_copies_name_the_sender_and_round_trip() {
        for payload in [Payload::Text("é\n".into()), Payload::Binary(b"\x00raw")] {
            let message = ClientData {
                topic: Some("t".into()),
                to: vec!["x".into()],
                payload: payload.clone(),
            };
            let mut out = Vec::new();
            let binary = encode_relayed("p1", Some("alice"), &message, &mut out);
            let relayed = parse_relayed(binary, &out).unwrap();
            assert_eq!(relayed.from, "p1");
            assert_eq!(relayed.identity.as_deref(), Some("alice"));
            assert_eq!(relayed.topic.as_deref(), Some("t"));
            assert_eq!(relayed.payload, payload);
        }
        let mut out = Vec::new();
        let m = parse_client(false, br#"{"data":"x"}"#).unwrap();
        encode_relayed("p", None, &m, &mut out);
        assert_eq!(out, br#"{"from":"p","data":"x"}"#);
    }

    #[test]
    fn malformed_envelopes_are_refused_with_a_reason() {
        let cases: &[(bool, &[u8])] = &[
            (false, b"hello"),
            (false, br#"{"topic":"x"}"#),
            (false, br#"{"data":5}"#),
            (false, br#"{"data":"x","extra":1}"#),
            (true, b"\x00"),
            (true, b"\x00\x09{}"),
            (true, b"\x00\x0c{\"data\":\"x\"}"),
        ];
        for (binary, bytes) in cases {
            assert!(
                parse_client(*binary, bytes).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bytes)
            );
        }
        let long_topic = format!(r#"{{"data":"x","topic":"{}"}}"#, "t".repeat(129));
        assert!(parse_client(false, long_topic.as_bytes()).is_err());
        let many: Vec<String> = (0..65).map(|i| format!("\"p{i}\"")).collect();
        let many_to = format!(r#"{{"data":"x","to":[{}]}}"#, many.join(","));
        assert!(parse_client(false, many_to.as_bytes()).is_err());
    }

    #[test]
    fn only_the_two_relayed_labels_are_known() {
        assert_eq!(
            DataChannelKind::from_label("cascade-reliable"),
            Some(DataChannelKind::Reliable)
        );
        assert_eq!(
            DataChannelKind::from_label("cascade-lossy"),
            Some(DataChannelKind::Lossy)
        );
        assert_eq!(DataChannelKind::from_label("cascade"), None);
    }
}
