//! The `cascade` binary: parse flags, set up logging, serve until told to
//! stop. SIGTERM (or `POST /admin/drain`) drains first; Ctrl-C (SIGINT), or a
//! second signal during a drain, stops at once.

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing_subscriber::EnvFilter;

use cascade::auth::{Access, KeySet};
use cascade::config::file::ArgsError;
use cascade::config::{self, Config, LogFormat, Subcommand, TokenCommand};

/// mimalloc: str0m allocates a buffer per packet it sends (and frees it
/// after the send), so the allocator sits on the forwarding path.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Blocking threads per core. The blocking pool builds each joining
/// connection's `Rtc` (key generation, ~1 ms of CPU) and serves the bundled
/// client's files; more threads than this cannot go faster on CPU-bound
/// work, and tokio's default of 512 let a burst of joins start hundreds of
/// threads (each with its own allocator heap) that a join storm then left
/// behind as memory. Work beyond the bound waits its turn.
const BLOCKING_THREADS_PER_CORE: usize = 4;

fn main() {
    cascade::memory::configure_allocator();
    // Before anything touches OpenSSL (it refuses once it has allocated).
    if !cascade::memory::route_openssl_to_mimalloc() && cfg!(feature = "mimalloc") {
        eprintln!("warning: OpenSSL allocates through malloc: its memory is not returned after a join storm");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS_PER_CORE * cores)
        .on_thread_park(cascade::memory::release_freed_when_idle)
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => Err(anyhow::Error::new(e).context("starting the tokio runtime")),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let args = match config::file::parse_args() {
        Ok(args) => args,
        // --help, --version and bad flags: clap prints and exits.
        Err(ArgsError::Flags(e)) => e.exit(),
        Err(e) => return Err(e.into()),
    };
    if let Some(Subcommand::Token(TokenCommand::Create(create))) = &args.command {
        let keys = match config::access(&args)? {
            Access::Tokens(keys) => keys,
            Access::Open => KeySet::default(),
        };
        let minted = create.mint(&keys)?;
        println!("{}", minted.token);
        if let Some(link) = minted.join_link {
            println!("{link}");
        }
        return Ok(());
    }
    let config = Config::try_from(args)?;
    init_logging(config.log_format);
    if config.access.is_open() {
        tracing::warn!(
            "no API keys: running open (dev mode), anyone who reaches the server may join any room"
        );
    }
    let drain_timeout = config.drain_timeout;
    tokio::spawn(cascade::memory::release_periodically());
    let mut signals = Signals::new().context("listening for SIGTERM and SIGINT")?;
    let server = cascade::server::start(config).await?;
    println!(
        "Cascade is running: open http://{}/ in a browser",
        server.http_addr()
    );
    let drain = tokio::select! {
        signal = signals.next() => signal == Stop::Terminate,
        () = server.drain_requested() => true,
    };
    if drain {
        tracing::info!(timeout = ?drain_timeout, "draining: no new joins, waiting for rooms to empty");
        tokio::select! {
            left = server.drain(drain_timeout) => match left {
                0 => tracing::info!("drained: every room has ended"),
                rooms => tracing::info!(rooms, "drain timeout: removing everyone left"),
            },
            _ = signals.next() => tracing::info!("signal during the drain: stopping now"),
        }
    }
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// Which signal asked the server to stop.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// SIGTERM: drain first.
    Terminate,
    /// SIGINT (Ctrl-C): stop now.
    Interrupt,
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.terminate.recv() => Stop::Terminate,
            _ = self.interrupt.recv() => Stop::Interrupt,
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("cascade=info,str0m=warn,warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // One object per line: the event's fields at the top level, the
        // innermost span (`worker`, `participant{room, participant}`) under
        // "span" and the whole chain under "spans".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
