//! `cascade-load`: the load generator. Headless str0m bots join Cascade
//! (and, for comparison, the Janus VideoRoom plugin) through their real
//! signaling APIs, send VP8/Opus-shaped media and measure what arrives.
//!
//! ```sh
//! # a 10-person meeting against a server this tool starts and measures
//! cascade-load --spawn-server --scenario meeting -n 10 --duration 20
//! # the same scenario against Cascade and Janus, side by side
//! cascade-load --spawn-server --janus http://127.0.0.1:8088/janus --janus-pid 1234 -n 10
//! # publishers send q/h/f simulcast, subscribers ask for the 640x360 layer
//! cascade-load --spawn-server -n 10 --simulcast --max-layer h
//! ```
//!
//! Everything goes to 127.0.0.1; every run is bounded in time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

use cascade_load::http::BaseUrl;
use cascade_load::load::{self, LoadOptions, Scenario, Target};
use cascade_load::summary::{Comparison, LoadResult};
use cascade_load::Layer;

/// Load generator for Cascade (and Janus, side by side).
#[derive(Debug, Parser)]
#[command(name = "cascade-load", version, about, long_about = None)]
struct Args {
    /// The shape of the call.
    #[arg(long, value_enum, default_value_t = Scenario::Meeting)]
    scenario: Scenario,
    /// Participants per room (viewers for a webinar, which adds 1 publisher).
    #[arg(short = 'n', long, default_value_t = 4)]
    participants: usize,
    /// Copies of the scenario's room (default 4 for `rooms`, else 1).
    #[arg(long)]
    rooms: Option<usize>,
    /// Publishers per room (default: everyone; 1 for a webinar).
    #[arg(long)]
    publishers: Option<usize>,
    /// Publish no audio.
    #[arg(long)]
    no_audio: bool,
    /// Publish no video.
    #[arg(long)]
    no_video: bool,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 1700)]
    video_kbps: u64,
    /// RTP payload size of video packets, bytes.
    #[arg(long, default_value_t = 1150)]
    packet_bytes: usize,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds between keyframes (4x larger frames).
    #[arg(long, default_value_t = 3)]
    keyframe_secs: u64,
    /// Video pacing: packets leave at this multiple of the video bitrate, as
    /// libwebrtc's pacer does (2.5); 0 writes each frame's packets at once
    /// (a burst per frame, a 4x burst per keyframe).
    #[arg(long, default_value_t = cascade_load::DEFAULT_PACING_FACTOR)]
    pacing_factor: f64,
    /// Publish video as three simulcast layers, rids q, h and f (320x180,
    /// 640x360, 1280x720): f at --video-kbps, q and h at 150/1700 and
    /// 500/1700 of it. Cascade only: Janus bots stay single-layer.
    #[arg(long)]
    simulcast: bool,
    /// Subscribers send a video_preference of this layer's size for every
    /// remote video, so the server forwards at most that layer (default f
    /// with --simulcast; without --simulcast only the preference is sent).
    #[arg(long, value_enum)]
    max_layer: Option<Layer>,
    /// RTP payload size of audio packets, bytes (50 packets/s).
    #[arg(long, default_value_t = 100)]
    audio_bytes: usize,
    /// Length of the measurement window, seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Settling time after everyone receives everything, seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Pause between two bots joining, milliseconds.
    #[arg(long, default_value_t = 20)]
    join_interval_ms: u64,
    /// Longest wait for every subscriber to receive every stream, seconds.
    #[arg(long, default_value_t = 20)]
    join_timeout: u64,

    /// HTTP address of a running Cascade server.
    #[arg(long, conflicts_with = "spawn_server")]
    cascade: Option<SocketAddr>,
    /// Start the Cascade binary on ephemeral loopback ports, measure it, stop it.
    #[arg(long)]
    spawn_server: bool,
    /// The binary `--spawn-server` starts.
    #[arg(long, default_value = "target/release/cascade")]
    server_bin: PathBuf,
    /// Media workers of the spawned server (default: its own default).
    #[arg(long)]
    workers: Option<usize>,
    /// CPUs the spawned server may run on, in `taskset -c` syntax (e.g. `0`
    /// or `0-1`); run the load generator itself on the others so the two
    /// do not compete: `taskset -c 1 cascade-load --server-cpus 0 ...`.
    #[arg(long)]
    server_cpus: Option<String>,
    /// Process id of the Cascade server given with --cascade, for CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Base URL of a Janus HTTP API, e.g. http://127.0.0.1:8088/janus.
    #[arg(long)]
    janus: Option<String>,
    /// Process id of that Janus, for CPU and RSS.
    #[arg(long)]
    janus_pid: Option<u32>,

    /// Tokio worker threads running the bots.
    #[arg(long, default_value_t = 1)]
    bot_threads: usize,
    /// Print JSON on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
    /// Exit with status 2 unless every run was clean (no failed or
    /// incomplete bot, no stalled stream, no loss in the window).
    #[arg(long)]
    check: bool,
}

fn main() {
    let args = Args::parse();
    // The bots' own str0m logs, for debugging a run: RUST_LOG=is=trace etc.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.bot_threads.max(1))
        .enable_all()
        .build();
    let result = runtime
        .context("cannot start the runtime")
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs what was asked; returns whether every run was clean.
async fn run(args: Args) -> anyhow::Result<bool> {
    let opts = load_options(&args)?;
    let mut spawned = None;
    let cascade = match (args.cascade, args.spawn_server) {
        (Some(addr), _) => Some((addr, args.server_pid)),
        (None, true) => {
            let server =
                SpawnedServer::start(&args.server_bin, args.workers, args.server_cpus.as_deref())
                    .await?;
            let target = (server.http_addr, Some(server.pid()));
            spawned = Some(server);
            Some(target)
        }
        (None, false) => None,
    };
    if cascade.is_none() && args.janus.is_none() {
        bail!("nothing to measure: pass --spawn-server, --cascade ADDR or --janus URL");
    }
    let mut results: Vec<LoadResult> = Vec::new();
    if let Some((http_addr, pid)) = cascade {
        let target = Target::Cascade { http_addr };
        let outcome = load::run(
            &target,
            &LoadOptions {
                server_pid: pid,
                ..opts.clone()
            },
        )
        .await;
        if let Some(server) = spawned.take() {
            server.stop();
        }
        results.push(outcome.context("cascade run")?);
    }
    if let Some(url) = &args.janus {
        let url = BaseUrl::parse(url).await.context("--janus")?;
        let target = Target::Janus { url };
        let janus_opts = LoadOptions {
            server_pid: args.janus_pid,
            ..opts.clone()
        };
        results.push(load::run(&target, &janus_opts).await.context("janus run")?);
    }
    let clean = results.iter().all(LoadResult::is_clean);
    print(results, args.json)?;
    Ok(clean || !args.check)
}

fn load_options(args: &Args) -> anyhow::Result<LoadOptions> {
    if args.participants == 0 || args.participants > 2000 {
        bail!("--participants must be between 1 and 2000");
    }
    let rooms = args.rooms.unwrap_or(if args.scenario == Scenario::Rooms {
        4
    } else {
        1
    });
    if !(1..=500).contains(&rooms) {
        bail!("--rooms must be between 1 and 500");
    }
    if !(1..=600).contains(&args.duration) {
        bail!("--duration must be between 1 and 600 seconds");
    }
    if !(args.pacing_factor == 0.0 || (1.5..=100.0).contains(&args.pacing_factor)) {
        bail!("--pacing-factor must be 0 (off) or between 1.5 and 100");
    }
    if args.no_audio && args.no_video && args.scenario != Scenario::Audio {
        bail!("--no-audio and --no-video together leave nothing to send");
    }
    Ok(LoadOptions {
        scenario: args.scenario,
        participants: args.participants,
        rooms,
        publishers: args.publishers,
        audio: !args.no_audio,
        video: !args.no_video,
        video_bitrate_bps: args.video_kbps * 1000,
        video_packet_bytes: args.packet_bytes.clamp(64, 1200),
        video_fps: args.fps.clamp(1, 120),
        keyframe_interval: Duration::from_secs(args.keyframe_secs.max(1)),
        pacing_factor: args.pacing_factor,
        simulcast: args.simulcast,
        max_layer: args.max_layer.or(args.simulcast.then_some(Layer::F)),
        audio_packet_bytes: args.audio_bytes.clamp(32, 1200),
        duration: Duration::from_secs(args.duration),
        warmup: Duration::from_secs(args.warmup),
        join_interval: Duration::from_millis(args.join_interval_ms),
        join_timeout: Duration::from_secs(args.join_timeout.clamp(1, 300)),
        server_pid: None,
        progress: !args.quiet,
        ..LoadOptions::default()
    })
}

fn print(mut results: Vec<LoadResult>, json: bool) -> anyhow::Result<()> {
    if results.len() == 2 {
        let janus = results.pop().context("two results")?;
        let cascade = results.pop().context("two results")?;
        let both = Comparison::new(cascade, janus);
        if json {
            println!("{}", serde_json::to_string_pretty(&both)?);
        } else {
            println!("{}", both.to_table());
            print_errors(&[&both.cascade, &both.janus]);
        }
        return Ok(());
    }
    for r in &results {
        if json {
            println!("{}", serde_json::to_string_pretty(r)?);
        } else {
            println!("{}", r.to_table());
            print_errors(&[r]);
        }
    }
    Ok(())
}

fn print_errors(results: &[&LoadResult]) {
    for r in results {
        for e in &r.errors {
            eprintln!("{}: error seen: {e}", r.target);
        }
    }
}

/// A `cascade` process started for the run, stopped when it is over.
struct SpawnedServer {
    child: Child,
    http_addr: SocketAddr,
}

impl SpawnedServer {
    /// Starts the server on loopback and waits for its "running" line.
    async fn start(
        bin: &PathBuf,
        workers: Option<usize>,
        cpus: Option<&str>,
    ) -> anyhow::Result<Self> {
        // `taskset` pins the server and then becomes it (same pid).
        let mut cmd = match cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.args(["-c", cpus]).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        cmd.args(["--http-addr", "127.0.0.1:0", "--media-addr", "127.0.0.1"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(w) = workers {
            cmd.args(["--workers", &w.to_string()]);
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "cannot start {} (build it with cargo build --release)",
                bin.display()
            )
        })?;
        let stdout = child.stdout.take().context("server stdout")?;
        // Read its stdout on a thread for the whole run, so it never blocks
        // on a full pipe; the first line naming an http:// URL carries the
        // HTTP address (log lines may come before it: an open server warns).
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut lines = std::io::BufReader::new(stdout).lines();
            let address = lines
                .by_ref()
                .map_while(Result::ok)
                .find(|l| l.contains("http://"));
            let _ = tx.send(address);
            for _ in lines {}
        });
        let started = Instant::now();
        let line = match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(Some(line))) => line,
            _ => {
                let _ = child.kill();
                bail!("the server did not report its address within 10 s");
            }
        };
        let http_addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .with_context(|| format!("unexpected first line from the server: {line:?}"))?;
        eprintln!(
            "started {} (pid {}) on http://{http_addr}/ in {:.0} ms",
            bin.display(),
            child.id(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(SpawnedServer { child, http_addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(self) {
        drop(self);
    }
}

impl Drop for SpawnedServer {
    /// SIGINT (Cascade stops at once instead of draining), then SIGKILL if
    /// it lingers.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
