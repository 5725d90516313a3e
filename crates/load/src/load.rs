//! Load runs: a scenario turned into a set of bots, started at a steady
//! pace against Cascade or Janus, measured over a fixed window, summarised.
//!
//! A run goes through [`Phase`]s: bots join (publishers first) and the
//! runner waits until every subscriber receives every stream it expects;
//! after a warm-up the measurement window opens (counters and `/proc`
//! samples at both edges, latency recorded only inside it); then bots stop
//! sending, drain, and leave. Every wait is bounded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::http::BaseUrl;
use super::janus::JanusRoom;
use super::procfs::{self, ProcSample};
use super::progress::Progress;
use super::record::LiveCounters;
use super::scrape::Buckets;
use super::simulcast::Layer;
use super::summary::{LoadResult, Window};
use super::{BotControl, BotError, BotOptions, BotReport, Phase};

/// The shape of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// One room; every participant publishes audio + video and receives
    /// everyone else.
    Meeting,
    /// One room; one publisher, `participants` viewers.
    Webinar,
    /// One room; everyone publishes audio only and hears everyone else.
    Audio,
    /// Many small meetings: `rooms` rooms of `participants` each.
    Rooms,
}

/// What a run sends and for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub scenario: Scenario,
    /// Participants per room (viewers, for a webinar).
    pub participants: usize,
    /// Independent copies of the scenario's room (Cascade places rooms on
    /// workers, so capacity with N workers needs at least N rooms).
    pub rooms: usize,
    /// Publishers per room, when not everyone publishes.
    pub publishers: Option<usize>,
    pub audio: bool,
    pub video: bool,
    pub video_bitrate_bps: u64,
    pub video_packet_bytes: usize,
    pub video_fps: u32,
    pub keyframe_interval: Duration,
    /// Video pacing as a multiple of its bitrate; 0 sends frames at once.
    pub pacing_factor: f64,
    /// Publishers send three simulcast layers (Cascade only; a Janus run
    /// is always single-layer).
    pub simulcast: bool,
    /// Subscribers ask for at most this layer of every video (Cascade only).
    pub max_layer: Option<Layer>,
    pub audio_packet_bytes: usize,
    /// Length of the measurement window.
    pub duration: Duration,
    /// Settling time between "everyone receives" and the window.
    pub warmup: Duration,
    /// Pause between two bots joining.
    pub join_interval: Duration,
    /// Longest wait for everyone to receive everything.
    pub join_timeout: Duration,
    /// Receive-only time after the window before bots leave.
    pub drain: Duration,
    /// A local server process to measure from `/proc`.
    pub server_pid: Option<u32>,
    pub progress: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            scenario: Scenario::Meeting,
            participants: 4,
            rooms: 1,
            publishers: None,
            audio: true,
            video: true,
            video_bitrate_bps: 1_700_000,
            video_packet_bytes: 1150,
            video_fps: 30,
            keyframe_interval: Duration::from_secs(3),
            pacing_factor: super::DEFAULT_PACING_FACTOR,
            simulcast: false,
            max_layer: None,
            audio_packet_bytes: 100,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            join_interval: Duration::from_millis(20),
            join_timeout: Duration::from_secs(20),
            drain: Duration::from_millis(500),
            server_pid: None,
            progress: true,
        }
    }
}

/// Which SFU the bots talk to.
#[derive(Debug, Clone)]
pub enum Target {
    Cascade { http_addr: std::net::SocketAddr },
    Janus { url: BaseUrl },
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Cascade { .. } => "cascade",
            Target::Janus { .. } => "janus",
        }
    }
}

/// Cascade's forward-delay histogram now (`None` for Janus, or when
/// `/metrics` is not on the HTTP port).
async fn forward_delay(target: &Target) -> Option<Buckets> {
    let Target::Cascade { http_addr } = target else {
        return None;
    };
    let base = BaseUrl::parse(&format!("http://{http_addr}")).await.ok()?;
    let text = base
        .get_text("/metrics", Duration::from_secs(2))
        .await
        .ok()?;
    Buckets::forward_delay(&text)
}

/// Why a run could not happen at all (bots failing is a result, not this).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the scenario has no bots: check --participants and --rooms")]
    Empty,
    #[error("cannot prepare the server: {0}")]
    Setup(#[from] BotError),
    #[error(transparent)]
    Proc(#[from] procfs::ProcError),
}

/// One bot of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBot {
    pub index: u32,
    pub room: usize,
    pub audio: bool,
    pub video: bool,
    /// (sender, kind) streams it should receive.
    pub expected_streams: usize,
}

impl PlannedBot {
    fn publishes(&self) -> bool {
        self.audio || self.video
    }
}

/// Turns a scenario into bots, publishers first within each room.
pub fn plan(opts: &LoadOptions) -> Vec<PlannedBot> {
    let n = opts.participants;
    let (per_room, publishers, audio, video) = match opts.scenario {
        Scenario::Meeting | Scenario::Rooms => {
            (n, opts.publishers.unwrap_or(n), opts.audio, opts.video)
        }
        Scenario::Webinar => (n + 1, opts.publishers.unwrap_or(1), opts.audio, opts.video),
        Scenario::Audio => (n, opts.publishers.unwrap_or(n), true, false),
    };
    let rooms = opts.rooms;
    let publishers = publishers.min(per_room);
    let kinds = audio as usize + video as usize;
    let mut bots = Vec::with_capacity(rooms * per_room);
    for room in 0..rooms {
        for i in 0..per_room {
            let publishes = i < publishers && kinds > 0;
            let others = publishers - usize::from(publishes);
            bots.push(PlannedBot {
                index: bots.len() as u32,
                room,
                audio: publishes && audio,
                video: publishes && video,
                expected_streams: others * kinds,
            });
        }
    }
    bots
}

/// Runs one scenario against one target and measures it.
pub async fn run(target: &Target, opts: &LoadOptions) -> Result<LoadResult, LoadError> {
    // The Janus flavour speaks no simulcast: its bots publish one layer.
    let janus_opts;
    let opts = match target {
        Target::Janus { .. } if opts.simulcast || opts.max_layer.is_some() => {
            janus_opts = LoadOptions {
                simulcast: false,
                max_layer: None,
                ..opts.clone()
            };
            &janus_opts
        }
        _ => opts,
    };
    let bots = plan(opts);
    if bots.is_empty() {
        return Err(LoadError::Empty);
    }
    let rooms = bots.iter().map(|b| b.room).max().unwrap_or(0) + 1;
    let run_id: u32 = rand::random::<u32>() % 1_000_000;
    let janus_rooms = match target {
        Target::Janus { url } => {
            let mut created = Vec::with_capacity(rooms);
            for r in 0..rooms {
                let id = run_id as u64 * 1000 + r as u64 + 1;
                let per_room = bots.iter().filter(|b| b.room == r).count();
                created.push(JanusRoom::create(url.clone(), id, per_room + 1).await?);
            }
            created
        }
        Target::Cascade { .. } => Vec::new(),
    };
    let baseline = opts.server_pid.map(procfs::sample).transpose()?;

    let live = Arc::new(LiveCounters::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);
    let started = Instant::now();
    let mut progress = Progress::new(target.name(), opts, &bots, started);
    // Every bot leaves on its own by this time, whatever the runner does.
    let hard_limit = opts.join_interval * bots.len() as u32
        + opts.join_timeout
        + opts.warmup
        + opts.duration
        + opts.drain
        + Duration::from_secs(5);

    let mut tasks: Vec<JoinHandle<Result<BotReport, BotError>>> = Vec::with_capacity(bots.len());
    let mut order: Vec<&PlannedBot> = bots.iter().filter(|b| b.publishes()).collect();
    order.extend(bots.iter().filter(|b| !b.publishes()));
    for bot in order {
        let mut b = BotOptions::new(([127, 0, 0, 1], 0).into(), "", bot.index);
        b.room = format!("load-{run_id}-{}", bot.room);
        b.publish_audio = bot.audio;
        b.publish_video = bot.video;
        b.video_bitrate_bps = opts.video_bitrate_bps;
        b.video_packet_bytes = opts.video_packet_bytes;
        b.video_fps = opts.video_fps;
        b.keyframe_interval = opts.keyframe_interval;
        b.pacing_factor = opts.pacing_factor;
        b.simulcast = opts.simulcast;
        b.max_layer = opts.max_layer;
        b.audio_packet_bytes = opts.audio_packet_bytes;
        b.duration = hard_limit.saturating_sub(started.elapsed());
        b.drain = opts.drain;
        b.expected_streams = bot.expected_streams;
        b.control = Some(BotControl {
            phase: phase_rx.clone(),
            live: live.clone(),
        });
        let bot_live = live.clone();
        let task = match target {
            Target::Cascade { http_addr } => {
                b.http_addr = *http_addr;
                tokio::spawn(count_failure(bot_live, super::run(b)))
            }
            Target::Janus { .. } => {
                let room = janus_rooms[bot.room].clone();
                tokio::spawn(count_failure(bot_live, super::janus::run(b, room)))
            }
        };
        tasks.push(task);
        progress.maybe_print(&live, "joining", None);
        tokio::time::sleep(opts.join_interval).await;
    }

    // Wait until every subscriber receives every stream it expects.
    let expecting = bots.iter().filter(|b| b.expected_streams > 0).count() as u64;
    let join_deadline = Instant::now() + opts.join_timeout;
    loop {
        let s = live.snapshot();
        if s.ready + s.failed >= expecting || Instant::now() >= join_deadline {
            break;
        }
        progress.maybe_print(&live, "joining", None);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join_done = started.elapsed();
    sleep_with_progress(opts.warmup, &mut progress, &live, "warm-up", None).await;

    let _ = phase_tx.send(Phase::Measure);
    let delay_start = forward_delay(target).await;
    let server_start = opts.server_pid.map(procfs::sample).transpose()?;
    let own_start = procfs::sample(procfs::own_pid()).ok();
    let machine_start = procfs::machine_busy_seconds();
    let live_start = live.snapshot();
    let window_start = Instant::now();
    sleep_with_progress(
        opts.duration,
        &mut progress,
        &live,
        "measuring",
        opts.server_pid,
    )
    .await;
    let window_end = Instant::now();
    let live_end = live.snapshot();
    let server_end = opts.server_pid.map(procfs::sample).transpose()?;
    let delay_end = forward_delay(target).await;
    let own_end = procfs::sample(procfs::own_pid()).ok();
    let machine_end = procfs::machine_busy_seconds();
    let _ = phase_tx.send(Phase::StopSending);

    tokio::time::sleep(opts.drain).await;
    let _ = phase_tx.send(Phase::Leave);
    let reports = collect(tasks).await;
    progress.finish();
    for room in &janus_rooms {
        room.destroy().await;
    }

    let window = Window {
        seconds: window_end.duration_since(window_start).as_secs_f64(),
        start: live_start,
        end: live_end,
        server: pair(baseline, server_start, server_end),
        own: own_start.zip(own_end),
        server_delay: delay_end.zip(delay_start).map(|(e, s)| e.since(&s)),
        machine_busy_seconds: machine_end.zip(machine_start).map(|(e, s)| e - s),
        join_seconds: join_done.as_secs_f64(),
        end_at: window_end,
    };
    Ok(LoadResult::new(
        target.name(),
        opts,
        &bots,
        &reports,
        &window,
    ))
}

/// Marks a bot that ended in an error in the live counters.
async fn count_failure(
    live: Arc<LiveCounters>,
    bot: impl std::future::Future<Output = Result<BotReport, BotError>>,
) -> Result<BotReport, BotError> {
    let result = bot.await;
    if result.is_err() {
        live.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    result
}

fn pair(
    baseline: Option<ProcSample>,
    start: Option<ProcSample>,
    end: Option<ProcSample>,
) -> Option<(ProcSample, ProcSample, ProcSample)> {
    Some((baseline?, start?, end?))
}

/// Waits for every bot (they leave on the `Leave` phase), bounded.
async fn collect(
    tasks: Vec<JoinHandle<Result<BotReport, BotError>>>,
) -> Vec<Result<BotReport, String>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut reports = Vec::with_capacity(tasks.len());
    for task in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        let report = match tokio::time::timeout(left, task).await {
            Ok(Ok(Ok(report))) => Ok(report),
            Ok(Ok(Err(e))) => Err(e.to_string()),
            Ok(Err(join)) => Err(format!("bot task panicked: {join}")),
            Err(_) => Err("bot did not leave in time".to_string()),
        };
        reports.push(report);
    }
    reports
}

async fn sleep_with_progress(
    total: Duration,
    progress: &mut Progress,
    live: &LiveCounters,
    label: &str,
    server_pid: Option<u32>,
) {
    let end = Instant::now() + total;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        progress.maybe_print(live, label, server_pid);
        tokio::time::sleep((end - now).min(Duration::from_millis(250))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(scenario: Scenario, participants: usize) -> LoadOptions {
        LoadOptions {
            scenario,
            participants,
            ..LoadOptions::default()
        }
    }

    #[test]
    fn meeting_everyone_publishes_and_expects_the_others() {
        let bots = plan(&opts(Scenario::Meeting, 4));
        assert_eq!(bots.len(), 4);
        assert!(bots
            .iter()
            .all(|b| b.audio && b.video && b.expected_streams == 6));
    }

    #[test]
    fn webinar_has_one_publisher_and_n_viewers() {
        let bots = plan(&opts(Scenario::Webinar, 10));
        assert_eq!(bots.len(), 11);
        assert!(bots[0].video && bots[0].expected_streams == 0);
        assert!(bots[1..]
            .iter()
            .all(|b| !b.audio && !b.video && b.expected_streams == 2));
    }

    #[test]
    fn audio_room_is_audio_only_and_rooms_repeat_meetings() {
        let bots = plan(&opts(Scenario::Audio, 5));
        assert!(bots
            .iter()
            .all(|b| b.audio && !b.video && b.expected_streams == 4));
        let bots = plan(&LoadOptions {
            rooms: 3,
            ..opts(Scenario::Rooms, 2)
        });
        assert_eq!(bots.len(), 6);
        assert_eq!(bots.iter().filter(|b| b.room == 2).count(), 2);
        assert!(bots.iter().all(|b| b.expected_streams == 2));
        let indices: std::collections::HashSet<u32> = bots.iter().map(|b| b.index).collect();
        assert_eq!(indices.len(), 6, "sender indices are unique across rooms");
    }

    #[test]
    fn webinars_can_be_repeated_in_several_rooms() {
        let bots = plan(&LoadOptions {
            rooms: 2,
            ..opts(Scenario::Webinar, 3)
        });
        assert_eq!(bots.len(), 8);
        assert_eq!(bots.iter().filter(|b| b.publishes()).count(), 2);
        assert!(bots[4].video && bots[4].room == 1);
    }

    #[test]
    fn fewer_publishers_than_participants() {
        let mut o = opts(Scenario::Meeting, 5);
        o.publishers = Some(2);
        let bots = plan(&o);
        assert_eq!(bots.iter().filter(|b| b.publishes()).count(), 2);
        assert_eq!(
            bots[0].expected_streams, 2,
            "a publisher hears the other one"
        );
        assert_eq!(bots[4].expected_streams, 4, "a listener hears both");
    }
}
