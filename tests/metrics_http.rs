//! The operator endpoints of a real server on loopback: `/metrics` after a
//! call with str0m bots, `/readyz`, `/admin/rooms`, signaling error counts,
//! `--metrics-addr`, and the Grafana dashboard's queries against what the
//! server really exports.

use cascade_test_support as common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use cascade_load::{self as bot, BotOptions, BotReport};
use str0m::media::MediaKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A minimal HTTP/1.1 GET: returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("a response within 10 s")
    .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this helper reads plain bodies only"
    );
    (status, body.to_string())
}

/// One sample line of the Prometheus text format.
#[derive(Debug)]
struct Series {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses the samples of a Prometheus text exposition (our own output: label
/// values without escaped quotes or commas).
fn parse_exposition(text: &str) -> Vec<Series> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label=value");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                (name, labels)
            }
            None => (series, HashMap::new()),
        };
        out.push(Series {
            name: name.to_string(),
            labels,
            value: value.parse().expect("numeric value"),
        });
    }
    out
}

/// A scrape, queried like PromQL's `sum(name{labels})`.
struct Scrape(Vec<Series>);

impl Scrape {
    async fn fetch(addr: SocketAddr) -> Scrape {
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        Scrape(parse_exposition(&body))
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matching: Vec<&Series> = self
            .0
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        assert!(!matching.is_empty(), "no series {name}{labels:?}");
        matching.iter().map(|s| s.value).sum()
    }

    fn names(&self) -> BTreeSet<&str> {
        self.0.iter().map(|s| s.name.as_str()).collect()
    }
}

fn received(reports: &[BotReport], kind: MediaKind) -> (f64, f64) {
    let streams = reports
        .iter()
        .flat_map(|r| r.received.iter())
        .filter(|((_, k), _)| *k == kind)
        .map(|(_, s)| s);
    streams.fold((0.0, 0.0), |(p, b), s| {
        (p + s.packets as f64, b + s.bytes as f64)
    })
}

/// Polls `/metrics` until `done` holds (bounded; a timeout fails the test).
async fn scrape_until(addr: SocketAddr, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let scrape = Scrape::fetch(addr).await;
        if done(&scrape) {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_moves_the_counters_and_the_gauges_return_to_zero() {
    let server = common::server::start(2, |_| {}).await;
    let addr = server.http_addr();
    let mut tasks = Vec::new();
    for index in 0..3 {
        let mut opts = BotOptions::new(addr, "meeting", index);
        opts.video_bitrate_bps = 500_000;
        opts.duration = Duration::from_secs(8);
        tasks.push(tokio::spawn(bot::run(opts)));
    }

    // During the call: everyone is in, publishing, and subscribed.
    let during = scrape_until(addr, "three participants subscribed to video", |s| {
        s.sum("cascade_media_subscribed_tracks", &[("kind", "video")]) == 6.0
    })
    .await;
    assert_eq!(during.sum("cascade_media_rooms", &[]), 1.0);
    assert_eq!(during.sum("cascade_media_participants", &[]), 3.0);
    assert_eq!(during.sum("cascade_media_peer_connections", &[]), 6.0);
    for kind in ["audio", "video"] {
        assert_eq!(
            during.sum("cascade_media_published_tracks", &[("kind", kind)]),
            3.0
        );
        assert_eq!(
            during.sum("cascade_media_subscribed_tracks", &[("kind", kind)]),
            6.0
        );
    }
    assert_eq!(
        during.sum("cascade_signal_active_sessions", &[("kind", "ws")]),
        3.0
    );
    assert_eq!(during.sum("cascade_worker_ready", &[]), 2.0);

    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["workers"].as_array().unwrap().len(), 2);

    let (status, body) = get(addr, "/admin/rooms").await;
    assert_eq!(status, 200, "{body}");
    let admin: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rooms = admin["rooms"].as_array().unwrap();
    assert_eq!(rooms.len(), 1, "{admin:#}");
    assert_eq!(rooms[0]["name"], "meeting");
    let participants = rooms[0]["participants"].as_array().unwrap();
    let mut names: Vec<&str> = participants
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["bot-0", "bot-1", "bot-2"]);
    for p in participants {
        let kinds: Vec<&str> = p["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["audio", "video"], "{p:#}");
        let subscribed = p["subscribed"].as_array().unwrap();
        assert_eq!(subscribed.len(), 4, "{p:#}");
        assert!(subscribed.iter().all(|s| s["state"] == "open"), "{p:#}");
    }

    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.unwrap().expect("bot ran"));
    }

    // After the call: gauges back to zero, counters moved by what happened.
    let after = scrape_until(addr, "everyone gone", |s| {
        s.sum("cascade_media_participants", &[]) == 0.0
            && s.sum("cascade_signal_active_sessions", &[]) == 0.0
    })
    .await;
    for gauge in [
        "cascade_media_rooms",
        "cascade_media_participants",
        "cascade_media_peer_connections",
        "cascade_media_published_tracks",
        "cascade_media_subscribed_tracks",
        "cascade_signal_active_sessions",
    ] {
        assert_eq!(after.sum(gauge, &[]), 0.0, "{gauge} back to zero");
    }
    assert_eq!(after.sum("cascade_media_joins_total", &[]), 3.0);
    assert_eq!(
        after.sum("cascade_media_leaves_total", &[("reason", "left")]),
        3.0
    );
    assert_eq!(after.sum("cascade_media_leaves_total", &[]), 3.0);
    assert_eq!(
        after.sum("cascade_media_subscribe_connections_total", &[]),
        3.0
    );
    assert_eq!(
        after.sum("cascade_signal_sessions_total", &[("kind", "ws")]),
        3.0
    );
    // (Not `leave`: a bot's last message races its socket's close.)
    for (kind, n) in [("join", 3.0), ("publish_offer", 3.0)] {
        assert_eq!(
            after.sum("cascade_signal_requests_total", &[("kind", kind)]),
            n,
            "{kind}"
        );
    }
    assert!(
        after.sum(
            "cascade_signal_requests_total",
            &[("kind", "subscribe_answer")]
        ) >= 3.0
    );
    assert_eq!(after.sum("cascade_signal_errors_total", &[]), 0.0);
    assert_eq!(after.sum("cascade_media_peer_errors_total", &[]), 0.0);
    // Media for a subscriber still connecting is dropped on purpose.
    let dropped = after.sum("cascade_rtp_dropped_packets_total", &[])
        - after.sum(
            "cascade_rtp_dropped_packets_total",
            &[("reason", "not_connected")],
        );
    assert_eq!(dropped, 0.0);

    let sent_by_bots: f64 = reports.iter().map(|r| r.sent_packets as f64).sum();
    let mut rtp_in = 0.0;
    for (kind, media) in [("audio", MediaKind::Audio), ("video", MediaKind::Video)] {
        let k = [("kind", kind)];
        let (got_packets, got_bytes) = received(&reports, media);
        let received_in = after.sum("cascade_rtp_received_packets_total", &k);
        let forwarded = after.sum("cascade_rtp_forwarded_packets_total", &k);
        assert!(got_packets > 0.0, "bots received {kind}");
        // Every packet a bot received was forwarded to it; each packet in
        // goes to at most the two other participants.
        assert!(
            forwarded >= got_packets,
            "{kind}: {forwarded} < {got_packets}"
        );
        assert!(forwarded <= 2.0 * received_in, "{kind}: fan-out above 2");
        assert!(received_in * 2.0 >= got_packets, "{kind}");
        let forwarded_bytes = after.sum("cascade_rtp_forwarded_bytes_total", &k);
        assert!(forwarded_bytes >= got_bytes, "{kind} bytes");
        // str0m reports what went out once a second: up to the forwarded count.
        let sent = after.sum("cascade_rtp_sent_packets_total", &k);
        let resent = after.sum("cascade_rtp_retransmitted_packets_total", &k);
        assert!(
            sent > 0.0 && sent <= forwarded + resent,
            "{kind}: sent {sent}"
        );
        rtp_in += received_in;
    }
    assert!(
        rtp_in <= sent_by_bots,
        "the server got at most what bots sent"
    );
    assert!(after.sum("cascade_worker_received_datagrams_total", &[]) >= rtp_in);
    assert!(after.sum("cascade_worker_sent_datagrams_total", &[]) > 0.0);
    assert!(after.sum("cascade_worker_busy_seconds_total", &[]) > 0.0);
    assert!(after.sum("cascade_worker_loop_iterations_total", &[]) > 0.0);
    assert_eq!(
        after.sum("cascade_media_join_duration_seconds_count", &[]),
        3.0,
        "one join time per participant"
    );
    assert!(after.sum("cascade_media_join_duration_seconds_sum", &[]) > 0.0);
    assert!(
        after.sum("cascade_rtcp_rtt_seconds_count", &[]) > 0.0,
        "receiver reports from the bots give RTTs"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_requests_and_errors_are_counted_by_kind_and_code() {
    let server = common::server::start(1, |_| {}).await;
    let mut ws = common::server::Ws::connect(&server).await;
    ws.send_text("{nope").await;
    ws.expect_error("bad_message").await;
    ws.send_json(serde_json::json!({"type": "mute", "mid": "0", "muted": true}))
        .await;
    ws.expect_error("not_joined").await;
    ws.assert_alive().await;

    let s = Scrape::fetch(server.http_addr()).await;
    assert_eq!(
        s.sum("cascade_signal_errors_total", &[("code", "bad_message")]),
        1.0
    );
    assert_eq!(
        s.sum("cascade_signal_errors_total", &[("code", "not_joined")]),
        1.0
    );
    assert_eq!(s.sum("cascade_signal_errors_total", &[]), 2.0);
    assert_eq!(
        s.sum("cascade_signal_requests_total", &[("kind", "invalid")]),
        1.0
    );
    assert_eq!(
        s.sum("cascade_signal_requests_total", &[("kind", "mute")]),
        1.0
    );
    assert_eq!(
        s.sum("cascade_signal_requests_total", &[("kind", "ping")]),
        1.0
    );
    assert_eq!(
        s.sum("cascade_signal_active_sessions", &[("kind", "ws")]),
        1.0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_addr_serves_operator_endpoints_apart() {
    let server = common::server::start(1, |c| {
        c.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (public, operator) = (server.http_addr(), server.metrics_addr());
    assert_ne!(public, operator);
    assert_eq!(get(public, "/metrics").await.0, 404);
    assert_eq!(get(public, "/admin/rooms").await.0, 404);
    assert_eq!(get(public, "/readyz").await.0, 200);
    let (status, body) = get(operator, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("cascade_build_info{version="), "{body}");
    assert_eq!(get(operator, "/admin/rooms").await.0, 200);
    assert_eq!(get(operator, "/readyz").await.0, 200);
    assert_eq!(get(operator, "/healthz").await.0, 200);
    server.shutdown().await;
}

/// Every identifier in `expr` that names a Cascade or process metric.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("cascade_") || t.starts_with("process_"))
        .map(str::to_string)
        .collect()
}

/// Every `expr` and templating `query` string in a Grafana dashboard.
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => dashboard_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_grafana_dashboard_is_exported() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/grafana/dashboards/cascade.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file")).unwrap();

    // Every panel but rows has queries, and each query names a metric.
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut rows = 0;
    for panel in panels {
        if panel["type"] == "row" {
            rows += 1;
            continue;
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            assert!(
                !metric_names(expr).is_empty(),
                "panel {}: {expr} uses no Cascade metric",
                panel["title"]
            );
        }
    }
    assert!(
        rows >= 8,
        "overview, traffic, forwarding, loss, RTT/BWE, join, workers, errors"
    );

    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let referenced: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(referenced.len() >= 30, "{referenced:?}");

    let server = common::server::start(2, |_| {}).await;
    let scrape = Scrape::fetch(server.http_addr()).await;
    let exported = scrape.names();
    let unknown: Vec<&String> = referenced
        .iter()
        .filter(|name| !exported.contains(name.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses metrics the server does not export: {unknown:?}"
    );
    server.shutdown().await;
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            r#"histogram_quantile(0.9, sum by (le) (rate(cascade_rtcp_rtt_seconds_bucket{instance=~"$instance"}[$__rate_interval])))"#
        ),
        ["cascade_rtcp_rtt_seconds_bucket"]
    );
    assert_eq!(
        metric_names("rate(process_cpu_seconds_total[1m]) / cascade_nope"),
        ["process_cpu_seconds_total", "cascade_nope"]
    );
}
