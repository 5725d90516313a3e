//! Server configuration: command-line flags, `CASCADE_*` environment
//! variables and the config file ([`file`]), checked once at start-up
//! ("parse, don't validate").

pub mod file;

use crate::media::DataLimits;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::auth::mint::CreateToken;
use crate::auth::{Access, KeyError, KeySet};
use crate::signal::ice_servers::IceServers;
use crate::signal::limits::LimitsConfig;
use crate::signal::origin::{AllowedOrigins, OriginError};
use crate::signal::tls::TlsSource;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Command-line flags of the `cascade` binary.
#[derive(Debug, Clone, Parser)]
#[command(name = "cascade", version, about = "Cascade: a WebRTC SFU", long_about = None)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// TOML file holding any of these flags under its long name, e.g.
    /// `http-addr = "0.0.0.0:8080"` (sample: docs/cascade.example.toml).
    /// Flags and environment variables override it.
    #[arg(long, env = "CASCADE_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address of the HTTP server (bundled client, WebSocket signaling, API).
    #[arg(long, env = "CASCADE_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// IP address the media (UDP) sockets bind to. Use 0.0.0.0 to listen on
    /// every interface, together with --public-ip.
    #[arg(long, env = "CASCADE_MEDIA_ADDR", default_value = "127.0.0.1")]
    pub media_addr: IpAddr,

    /// UDP port of the first media worker; worker N uses this port + N.
    /// 0 picks free ports.
    #[arg(long, env = "CASCADE_MEDIA_PORT", default_value_t = 0)]
    pub media_port: u16,

    /// IP address advertised to clients in ICE candidates (a public or LAN
    /// address when the media address is not reachable as is). Defaults to
    /// --media-addr.
    #[arg(long, env = "CASCADE_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,

    /// Number of media worker threads. Defaults to the number of CPU cores.
    #[arg(long, env = "CASCADE_WORKERS")]
    pub workers: Option<usize>,

    /// Do not accept ICE over TCP. By default each media worker also
    /// listens on TCP at its UDP port's number (passive candidates, ranked
    /// below UDP), for clients whose network drops UDP.
    #[arg(long, env = "CASCADE_NO_ICE_TCP")]
    pub no_ice_tcp: bool,

    /// Seconds a participant may take to connect its media before removal.
    #[arg(long, env = "CASCADE_CONNECT_TIMEOUT_SECS", default_value_t = 20)]
    pub connect_timeout_secs: u64,

    /// Seconds a participant may stay ICE-disconnected before removal.
    #[arg(long, env = "CASCADE_DISCONNECT_GRACE_SECS", default_value_t = 5)]
    pub disconnect_grace_secs: u64,

    /// Log format.
    #[arg(long, env = "CASCADE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Serve `/metrics` and `/admin/*` on this separate address (for example
    /// an internal interface) instead of on --http-addr.
    #[arg(long, env = "CASCADE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// API key whose secret signs access tokens (JWT `iss`). With
    /// --api-secret; or use --keys-file for several.
    #[arg(long, env = "CASCADE_API_KEY", global = true)]
    pub api_key: Option<String>,

    /// The secret of --api-key (at least 32 characters). Prefer the
    /// environment variable: flags show up in `ps`.
    #[arg(
        long,
        env = "CASCADE_API_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub api_secret: Option<String>,

    /// File of API keys, one `key: secret` per line (`#` comments).
    #[arg(long, env = "CASCADE_KEYS_FILE", global = true)]
    pub keys_file: Option<PathBuf>,

    /// Run without access tokens even though a listener is not on
    /// loopback: anyone who reaches the server may join any room.
    #[arg(long, env = "CASCADE_INSECURE_OPEN")]
    pub insecure_open: bool,

    /// Seconds a client may take to send an HTTP request's header.
    #[arg(long, env = "CASCADE_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,

    /// Seconds one HTTP request may take, its body included.
    #[arg(long, env = "CASCADE_REQUEST_TIMEOUT_SECS", default_value_t = 15)]
    pub request_timeout_secs: u64,

    /// Seconds an upgraded WebSocket may take to send `join`.
    #[arg(long, env = "CASCADE_JOIN_TIMEOUT_SECS", default_value_t = 10)]
    pub join_timeout_secs: u64,

    /// Open TCP connections to the HTTP port at most; more are closed at once.
    #[arg(long, env = "CASCADE_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Concurrent WebSocket and WHIP/WHEP sessions per client address (IPv4
    /// address or IPv6 /64).
    #[arg(long, env = "CASCADE_MAX_SESSIONS_PER_IP", default_value_t = 32)]
    pub max_sessions_per_ip: usize,

    /// Joins per client address per minute (bursts up to the same number).
    #[arg(long, env = "CASCADE_JOINS_PER_IP_PER_MINUTE", default_value_t = 60)]
    pub joins_per_ip_per_minute: u32,

    /// Apply the per-address limits to loopback clients too (by default they
    /// are local tools or a reverse proxy, and not limited).
    #[arg(long, env = "CASCADE_LIMIT_LOOPBACK")]
    pub limit_loopback: bool,

    /// Participants per room at most.
    #[arg(
        long,
        env = "CASCADE_MAX_PARTICIPANTS_PER_ROOM",
        default_value_t = 1000
    )]
    pub max_participants_per_room: usize,

    /// Rooms per server at most.
    #[arg(long, env = "CASCADE_MAX_ROOMS", default_value_t = 10_000)]
    pub max_rooms: usize,

    /// Data-channel messages one participant may send per second (bursts of
    /// a second's worth); more are not relayed and the sender is told.
    #[arg(long, env = "CASCADE_DATA_MESSAGES_PER_SECOND", default_value_t = 100)]
    pub data_messages_per_second: u32,

    /// Data-channel bytes one participant may send per second (bursts of a
    /// second's worth).
    #[arg(long, env = "CASCADE_DATA_BYTES_PER_SECOND", default_value_t = 256 * 1024)]
    pub data_bytes_per_second: u32,

    /// Origin of a web app on another site whose pages may open the
    /// signaling WebSocket (`https://app.example.org`), beside the server's
    /// own pages; `*` allows any. Repeat for several.
    #[arg(
        long = "allowed-origin",
        env = "CASCADE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// How long a drain (SIGTERM or `POST /admin/drain`) waits for rooms to
    /// empty before removing everyone and exiting, e.g. `90s`, `10m`. `0s`
    /// stops at once.
    #[arg(
        long,
        env = "CASCADE_DRAIN_TIMEOUT",
        default_value = "5m",
        value_parser = humantime::parse_duration
    )]
    pub drain_timeout: Duration,

    /// ICE server URL advertised to WHIP/WHEP clients in `Link` headers, e.g.
    /// `stun:stun.example.org:3478`. Repeat for several.
    #[arg(
        long = "ice-server",
        env = "CASCADE_ICE_SERVERS",
        value_delimiter = ','
    )]
    pub ice_servers: Vec<String>,

    /// TURN server URL given to clients with short-lived credentials from
    /// --turn-secret (coturn's REST-API scheme), e.g.
    /// `turn:turn.example.org:3478?transport=udp`. Repeat for several.
    #[arg(long = "turn-url", env = "CASCADE_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,

    /// The secret shared with the TURN server (coturn `use-auth-secret`,
    /// `static-auth-secret`). Prefer the environment variable.
    #[arg(long, env = "CASCADE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// How long TURN credentials stay valid, e.g. `6h`. A call that outlasts
    /// them keeps its relay until the TURN server next checks them.
    #[arg(
        long,
        env = "CASCADE_TURN_TTL",
        default_value = "24h",
        value_parser = humantime::parse_duration
    )]
    pub turn_ttl: Duration,

    /// PEM certificate chain (leaf first): the HTTP port serves HTTPS and
    /// WSS. With --tls-key.
    #[arg(long, env = "CASCADE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "CASCADE_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Serve HTTPS with a certificate made at start for localhost and the
    /// advertised addresses (LAN trials: browsers warn; the log prints its
    /// SHA-256 fingerprint to check against).
    #[arg(long, env = "CASCADE_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
}

/// What the binary does besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Subcommand {
    /// Access tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a token with the configured API keys and print it with a join
    /// link.
    Create(CreateToken),
}

/// How long the control plane waits for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// For an HTTP request's header (also between keep-alive requests).
    pub header: Duration,
    /// For a whole HTTP request, body included.
    pub request: Duration,
    /// For an upgraded WebSocket's `join`.
    pub join: Duration,
}

/// A configuration that passed all checks.
#[derive(Debug, Clone)]
pub struct Config {
    pub http_addr: SocketAddr,
    pub media_addr: IpAddr,
    pub media_port: u16,
    pub public_ip: IpAddr,
    pub workers: usize,
    /// Whether workers accept ICE over TCP.
    pub ice_tcp: bool,
    pub connect_timeout: Duration,
    pub disconnect_grace: Duration,
    pub log_format: LogFormat,
    /// Where `/metrics` and `/admin/*` are served; `None`: on `http_addr`.
    pub metrics_addr: Option<SocketAddr>,
    /// Who may join: tokens of these keys, or anyone (dev mode).
    pub access: Access,
    pub max_connections: usize,
    pub timeouts: Timeouts,
    pub limits: LimitsConfig,
    pub max_participants_per_room: usize,
    pub max_rooms: usize,
    /// What one participant may send on the relayed data channels.
    pub data_limits: DataLimits,
    /// `--ice-server`s, and `--turn-url`s with what mints their credentials.
    pub ice_servers: IceServers,
    /// How long a drain waits for rooms to empty.
    pub drain_timeout: Duration,
    /// Which other sites' pages may open the signaling WebSocket.
    pub allowed_origins: AllowedOrigins,
    /// HTTPS on the HTTP port, if asked for.
    pub tls: Option<TlsSource>,
}

/// A configuration mistake, explained for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--media-addr {0} is a wildcard address: also pass --public-ip with the address clients should send media to")]
    WildcardWithoutPublicIp(IpAddr),
    #[error("--public-ip {0} cannot be a wildcard address")]
    WildcardPublicIp(IpAddr),
    #[error("--workers must be between 1 and 256, got {0}")]
    Workers(usize),
    #[error("--media-port {port} + {workers} workers does not fit below 65536")]
    PortRange { port: u16, workers: usize },
    #[error("every --*-timeout-secs and --disconnect-grace-secs must be at least 1")]
    Timeout,
    #[error("--max-connections, --max-sessions-per-ip, --joins-per-ip-per-minute, --max-participants-per-room, --max-rooms and --data-*-per-second must be at least 1")]
    ZeroLimit,
    #[error("{0}")]
    Keys(#[from] KeyError),
    #[error("--api-key and --api-secret go together: give both, or neither")]
    HalfAKey,
    #[error("give API keys either with --api-key/--api-secret or in --keys-file, not both")]
    KeysTwice,
    #[error("cannot read --keys-file {path}: {source}")]
    KeysFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{addr} is not a loopback address and no API keys are set, so anyone who reaches it could join any room: pass --api-key and --api-secret (or --keys-file), or --insecure-open to run open anyway")]
    OpenOnPublicAddress { addr: IpAddr },
    #[error(transparent)]
    Origin(#[from] OriginError),
    #[error("--ice-server {0:?} must start with stun:, stuns:, turn: or turns:")]
    IceServer(String),
    #[error("--turn-url {0:?} must start with turn: or turns:")]
    TurnUrl(String),
    #[error("--turn-url and --turn-secret go together: give both, or neither")]
    HalfATurn,
    #[error("--tls-cert and --tls-key go together, and --tls-self-signed replaces both: give the pair, or --tls-self-signed, or none")]
    Tls,
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let public_ip = match args.public_ip {
            Some(ip) if ip.is_unspecified() => return Err(ConfigError::WildcardPublicIp(ip)),
            Some(ip) => ip,
            None if args.media_addr.is_unspecified() => {
                return Err(ConfigError::WildcardWithoutPublicIp(args.media_addr))
            }
            None => args.media_addr,
        };
        let workers = args
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if !(1..=256).contains(&workers) {
            return Err(ConfigError::Workers(workers));
        }
        if args.media_port != 0 && args.media_port as usize + workers > 65536 {
            return Err(ConfigError::PortRange {
                port: args.media_port,
                workers,
            });
        }
        let timeouts = [
            args.connect_timeout_secs,
            args.disconnect_grace_secs,
            args.header_timeout_secs,
            args.request_timeout_secs,
            args.join_timeout_secs,
        ];
        if timeouts.contains(&0) {
            return Err(ConfigError::Timeout);
        }
        let limits = [
            args.max_connections,
            args.max_sessions_per_ip,
            args.joins_per_ip_per_minute as usize,
            args.max_participants_per_room,
            args.max_rooms,
            args.data_messages_per_second as usize,
            args.data_bytes_per_second as usize,
        ];
        if limits.contains(&0) {
            return Err(ConfigError::ZeroLimit);
        }
        let access = access(&args)?;
        if access.is_open() && !args.insecure_open {
            let listeners = [
                Some(args.http_addr.ip()),
                args.metrics_addr.map(|a| a.ip()),
                Some(args.media_addr),
            ];
            if let Some(addr) = listeners.into_iter().flatten().find(|ip| !ip.is_loopback()) {
                return Err(ConfigError::OpenOnPublicAddress { addr });
            }
        }
        if let Some(bad) = args
            .ice_servers
            .iter()
            .find(|s| !is_ice_url(s, &["stun:", "stuns:", "turn:", "turns:"]))
        {
            return Err(ConfigError::IceServer(bad.clone()));
        }
        if let Some(bad) = args
            .turn_urls
            .iter()
            .find(|s| !is_ice_url(s, &["turn:", "turns:"]))
        {
            return Err(ConfigError::TurnUrl(bad.clone()));
        }
        let tls = match (&args.tls_cert, &args.tls_key, args.tls_self_signed) {
            (None, None, false) => None,
            (None, None, true) => Some(TlsSource::SelfSigned),
            (Some(cert), Some(key), false) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => return Err(ConfigError::Tls),
        };
        let turn_secret = args.turn_secret.as_deref().filter(|s| !s.is_empty());
        if args.turn_urls.is_empty() != turn_secret.is_none() {
            return Err(ConfigError::HalfATurn);
        }
        Ok(Config {
            http_addr: args.http_addr,
            media_addr: args.media_addr,
            media_port: args.media_port,
            public_ip,
            workers,
            ice_tcp: !args.no_ice_tcp,
            connect_timeout: Duration::from_secs(args.connect_timeout_secs),
            disconnect_grace: Duration::from_secs(args.disconnect_grace_secs),
            log_format: args.log_format,
            metrics_addr: args.metrics_addr,
            access,
            max_connections: args.max_connections,
            timeouts: Timeouts {
                header: Duration::from_secs(args.header_timeout_secs),
                request: Duration::from_secs(args.request_timeout_secs),
                join: Duration::from_secs(args.join_timeout_secs),
            },
            limits: LimitsConfig {
                sessions_per_ip: args.max_sessions_per_ip,
                joins_per_ip_per_minute: args.joins_per_ip_per_minute,
                limit_loopback: args.limit_loopback,
            },
            max_participants_per_room: args.max_participants_per_room,
            max_rooms: args.max_rooms,
            data_limits: DataLimits {
                messages_per_second: args.data_messages_per_second,
                bytes_per_second: args.data_bytes_per_second,
            },
            ice_servers: IceServers::new(
                args.ice_servers,
                args.turn_urls,
                turn_secret,
                args.turn_ttl,
            ),
            drain_timeout: args.drain_timeout,
            allowed_origins: AllowedOrigins::parse(&args.allowed_origins)?,
            tls,
        })
    }
}

/// Whether `url` starts with one of `schemes` and fits in a `Link` header's
/// `<…>` (no whitespace, `>` or `"`).
fn is_ice_url(url: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|p| url.starts_with(p))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c == '>' || c == '"')
}

/// The access policy the key flags ask for.
pub fn access(args: &Args) -> Result<Access, ConfigError> {
    if args.keys_file.is_some() && (args.api_key.is_some() || args.api_secret.is_some()) {
        return Err(ConfigError::KeysTwice);
    }
    if let Some(path) = &args.keys_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::KeysFile {
            path: path.clone(),
            source,
        })?;
        return Ok(Access::Tokens(KeySet::parse(&text)?));
    }
    match (&args.api_key, &args.api_secret) {
        (Some(key), Some(secret)) => Ok(Access::Tokens(KeySet::single(key, secret)?)),
        (None, None) => Ok(Access::Open),
        _ => Err(ConfigError::HalfAKey),
    }
}

impl Config {
    /// A configuration for tests and embedding: everything on 127.0.0.1,
    /// ephemeral ports, `workers` media workers.
    pub fn loopback(workers: usize) -> Self {
        let args = Args::parse_from([
            "cascade",
            "--http-addr",
            "127.0.0.1:0",
            "--workers",
            &workers.to_string(),
        ]);
        // The arguments above are valid by construction.
        Config::try_from(args).expect("loopback config is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["cascade"];
        all.extend_from_slice(args);
        Config::try_from(Args::try_parse_from(all).unwrap())
    }

    #[test]
    fn defaults_serve_localhost() {
        let c = parse(&["--workers", "2"]).unwrap();
        assert_eq!(c.http_addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.public_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(c.workers, 2);
    }

    #[test]
    fn wildcard_bind_needs_public_ip() {
        assert!(matches!(
            parse(&["--media-addr", "0.0.0.0"]),
            Err(ConfigError::WildcardWithoutPublicIp(_))
        ));
        let c = parse(&[
            "--media-addr",
            "0.0.0.0",
            "--public-ip",
            "192.0.2.7",
            "--insecure-open",
        ])
        .unwrap();
        assert_eq!(c.public_ip, "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_open_server_stays_on_loopback_unless_told_otherwise() {
        assert!(parse(&[]).unwrap().access.is_open(), "dev mode on loopback");
        for public in [
            &["--http-addr", "0.0.0.0:8080"][..],
            &["--media-addr", "192.0.2.7"],
            &["--metrics-addr", "10.0.0.1:9100"],
        ] {
            let err = parse(public).unwrap_err();
            assert!(
                matches!(err, ConfigError::OpenOnPublicAddress { .. }),
                "{public:?}"
            );
            let text = err.to_string();
            assert!(
                text.contains("--api-key") && text.contains("--insecure-open"),
                "{text}"
            );
        }
        let keyed = parse(&[
            "--http-addr",
            "0.0.0.0:8080",
            "--api-key",
            "APIa",
            "--api-secret",
            SECRET,
        ])
        .unwrap();
        assert!(!keyed.access.is_open());
        let open = parse(&["--http-addr", "0.0.0.0:8080", "--insecure-open"]).unwrap();
        assert!(open.access.is_open());
    }

    #[test]
    fn keys_come_from_flags_or_a_file_and_weak_ones_are_refused() {
        assert!(matches!(
            parse(&["--api-key", "APIa", "--api-secret", "short"]),
            Err(ConfigError::Keys(_))
        ));
        let dir = std::env::temp_dir().join(format!("cascade-keys-{}", std::process::id()));
        std::fs::write(&dir, format!("# test\nAPIa: {SECRET}\nAPIb: {SECRET}\n")).unwrap();
        let c = parse(&["--keys-file", dir.to_str().unwrap()]).unwrap();
        std::fs::remove_file(&dir).unwrap();
        match c.access {
            Access::Tokens(keys) => assert!(keys.secret("APIb").is_some()),
            Access::Open => panic!("a keys file means tokens"),
        }
        assert!(matches!(
            parse(&["--keys-file", "/nonexistent/keys"]),
            Err(ConfigError::KeysFile { .. })
        ));
        assert!(
            matches!(parse(&["--api-key", "APIa"]), Err(ConfigError::HalfAKey)),
            "a key needs its secret"
        );
        assert!(matches!(
            parse(&["--api-secret", SECRET]),
            Err(ConfigError::HalfAKey)
        ));
        assert!(matches!(
            parse(&[
                "--keys-file",
                "/k",
                "--api-key",
                "APIa",
                "--api-secret",
                SECRET
            ]),
            Err(ConfigError::KeysTwice)
        ));
    }

    #[test]
    fn nonsense_is_rejected_with_a_reason() {
        assert!(matches!(
            parse(&["--workers", "0"]),
            Err(ConfigError::Workers(0))
        ));
        assert!(matches!(
            parse(&["--media-port", "65535", "--workers", "2"]),
            Err(ConfigError::PortRange { .. })
        ));
        assert!(matches!(
            parse(&["--public-ip", "::"]),
            Err(ConfigError::WildcardPublicIp(_))
        ));
    }

    #[test]
    fn turn_urls_need_a_secret_and_a_turn_scheme() {
        let turn = "turn:turn.example.org:3478?transport=udp";
        assert!(matches!(
            parse(&["--turn-url", turn]),
            Err(ConfigError::HalfATurn)
        ));
        assert!(matches!(
            parse(&["--turn-secret", "s3cret"]),
            Err(ConfigError::HalfATurn)
        ));
        assert!(matches!(
            parse(&["--turn-url", "stun:x.example", "--turn-secret", "s"]),
            Err(ConfigError::TurnUrl(_))
        ));
        assert!(matches!(
            parse(&["--ice-server", "turn:a\"b", "--turn-secret", "s"]),
            Err(ConfigError::IceServer(_))
        ));
        let c = parse(&[
            "--turn-url",
            turn,
            "--turn-secret",
            "s3cret",
            "--turn-ttl",
            "6h",
        ])
        .unwrap();
        assert!(!c.ice_servers.is_empty());
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "the secret is never shown"
        );
    }
}
