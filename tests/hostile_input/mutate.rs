//! Mutations of valid input: what a broken or malicious client does to an SDP,
//! an sdpfrag, a JSON message or a token before it sends it.
//!
//! An [`Edit`] works on lines (delete, duplicate, swap, insert, replace the
//! value after `:` or `=`) or on bytes (truncate, flip, splice). Edits are
//! data, so proptest shrinks a failing case to the fewest, smallest edits.
//!
//! [`Text::Ascii`] leaves out non-ASCII values: such input more often stays
//! well-formed enough to reach the code behind the parser.

use proptest::prelude::*;

/// One change to a text.
#[derive(Debug, Clone)]
pub enum Edit {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    InsertLine(usize, String),
    /// Replaces what follows the line's first `:` (or, without one, `=`).
    ReplaceValue(usize, String),
    /// Cuts the text at a byte offset.
    Truncate(usize),
    /// XORs one byte with a mask in `1..128` (ASCII stays ASCII).
    FlipByte(usize, u8),
    /// Inserts text at a byte offset.
    Splice(usize, String),
}

/// Which characters inserted text may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Unicode,
    Ascii,
}

/// Values that break parsers: huge and negative numbers, empty and blank
/// strings, separators, non-ASCII (unless `text` is ASCII), and long runs.
pub fn hostile_value(text: Text) -> BoxedStrategy<String> {
    let ascii = prop_oneof![
        Just(String::new()),
        Just(" ".to_string()),
        Just("18446744073709551616".to_string()),
        Just("4294967296".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999999999999".to_string()),
        Just("0".to_string()),
        Just(":::".to_string()),
        Just("\u{0}".to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        "[ -~]{0,40}",
        ("[ -~]", 1..5000usize).prop_map(|(c, n)| c.repeat(n)),
    ];
    match text {
        Text::Ascii => ascii.boxed(),
        Text::Unicode => prop_oneof![
            3 => ascii,
            1 => any::<String>(),
            1 => (any::<char>(), 1..5000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
        ]
        .boxed(),
    }
}

/// A line a hostile SDP or sdpfrag might carry.
fn hostile_line(text: Text) -> impl Strategy<Value = String> {
    let prefix = prop_oneof![
        Just("a=candidate:"),
        Just("a=ice-ufrag:"),
        Just("a=ice-pwd:"),
        Just("a=fingerprint:sha-256 "),
        Just("a=setup:"),
        Just("a=mid:"),
        Just("a=rid:"),
        Just("a=simulcast:send "),
        Just("a=extmap:"),
        Just("a=rtpmap:"),
        Just("a=fmtp:"),
        Just("a=ssrc:"),
        Just("a=ssrc-group:FID "),
        Just("a=msid:"),
        Just("a=group:BUNDLE "),
        Just("a=rtcp-fb:"),
        Just("m=video "),
        Just("m=audio "),
        Just("m=application "),
        Just("c=IN IP4 "),
        Just("o=- "),
        Just("b=AS:"),
        Just(""),
    ];
    (prefix, hostile_value(text)).prop_map(|(p, v)| format!("{p}{v}"))
}

pub fn edit(text: Text) -> impl Strategy<Value = Edit> {
    let at = 0..10_000usize;
    prop_oneof![
        at.clone().prop_map(Edit::DeleteLine),
        at.clone().prop_map(Edit::DuplicateLine),
        (at.clone(), at.clone()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (at.clone(), hostile_line(text)).prop_map(|(i, l)| Edit::InsertLine(i, l)),
        (at.clone(), hostile_value(text)).prop_map(|(i, v)| Edit::ReplaceValue(i, v)),
        at.clone().prop_map(Edit::Truncate),
        (at.clone(), 1..128u8).prop_map(|(i, m)| Edit::FlipByte(i, m)),
        (at, hostile_value(text)).prop_map(|(i, v)| Edit::Splice(i, v)),
    ]
}

/// `base` with one to `max_edits` edits applied.
pub fn mutated(base: String, max_edits: usize, text: Text) -> impl Strategy<Value = String> {
    let edits = proptest::collection::vec(edit(text), 1..=max_edits);
    edits.prop_map(move |edits| apply(&base, &edits))
}

/// Applies `edits` in order. Line indices and byte offsets wrap around the
/// current text, so every edit lands somewhere.
pub fn apply(base: &str, edits: &[Edit]) -> String {
    let mut text = base.to_string();
    for edit in edits {
        text = apply_one(&text, edit);
    }
    text
}

fn apply_one(text: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = text.split("\r\n").map(str::to_string).collect();
    let n = lines.len();
    match edit {
        Edit::DeleteLine(i) => {
            lines.remove(i % n);
        }
        Edit::DuplicateLine(i) => {
            let line = lines[i % n].clone();
            lines.insert(i % n, line);
        }
        Edit::SwapLines(a, b) => lines.swap(a % n, b % n),
        Edit::InsertLine(i, line) => lines.insert(i % (n + 1), line.clone()),
        Edit::ReplaceValue(i, value) => {
            let line = &mut lines[i % n];
            if let Some(at) = line.find(':').or_else(|| line.find('=')) {
                line.truncate(at + 1);
                line.push_str(value);
            }
        }
        Edit::Truncate(at) => return bytes_to_text(&text.as_bytes()[..at % (text.len() + 1)]),
        Edit::FlipByte(at, mask) => {
            let mut bytes = text.as_bytes().to_vec();
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= mask;
            }
            return bytes_to_text(&bytes);
        }
        Edit::Splice(at, value) => {
            let mut bytes = text.as_bytes().to_vec();
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, value.bytes());
            return bytes_to_text(&bytes);
        }
    }
    lines.join("\r\n")
}

/// Text APIs take `&str`: a cut through a multi-byte character becomes U+FFFD.
fn bytes_to_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn edits_land_where_they_say() {
    let base = "v=0\r\na=mid:0\r\na=setup:actpass";
    assert_eq!(
        apply(base, &[Edit::DeleteLine(4)]),
        "v=0\r\na=setup:actpass"
    );
    assert_eq!(
        apply(base, &[Edit::ReplaceValue(1, "99".into())]),
        "v=0\r\na=mid:99\r\na=setup:actpass"
    );
    assert_eq!(apply(base, &[Edit::Truncate(3)]), "v=0");
    assert_eq!(apply("ab", &[Edit::FlipByte(1, 1)]), "ac");
    assert_eq!(apply("ab", &[Edit::Splice(1, "xy".into())]), "axyb");
}
