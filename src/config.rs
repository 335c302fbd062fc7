//! One `Config` from three sources: flags, `HOOKRELAY_*` environment
//! variables (both through clap) and a TOML file (`--config`). A flag or
//! variable wins over the file; the file wins over the defaults below.
//! Everything is checked once, here, and errors name the field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::endpoint::EndpointInput;
use crate::store::Durability;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8081";
pub const DEFAULT_DATA: &str = "./hookrelay-data";
/// GitHub's limit; larger bodies get `413`.
pub const DEFAULT_MAX_BODY: usize = 25 * 1024 * 1024;
/// A client that has not sent its full request head by then is dropped.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Filesystem usage (percent) at which ingest starts answering `503`.
pub const DEFAULT_MAX_DISK_USAGE: f64 = 95.0;
/// Headers per request before `431`.
pub const MAX_HEADERS: usize = 128;
/// Bytes of request head (request line and headers) before `431`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The longest `--retain-days`: a century.
pub const MAX_RETAIN_DAYS: u64 = 36_500;

/// `hookrelay serve` flags. Every one is optional here so that the config
/// file can fill what the command line leaves out.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Ingest listener (senders post to /in/{slug}) [default: 127.0.0.1:8080].
    #[arg(long, env = "HOOKRELAY_LISTEN", value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Option<SocketAddr>,
    /// Admin listener (dashboard, /api, /metrics) [default: 127.0.0.1:8081].
    #[arg(long, env = "HOOKRELAY_ADMIN", value_name = "ADDR", value_parser = parse_addr)]
    pub admin: Option<SocketAddr>,
    /// RocksDB data directory [default: ./hookrelay-data].
    #[arg(long, env = "HOOKRELAY_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Largest accepted request body, e.g. 26214400, 25MiB, 512KiB [default: 25MiB].
    #[arg(long, env = "HOOKRELAY_MAX_BODY", value_name = "BYTES", value_parser = parse_size)]
    pub max_body: Option<usize>,
    /// sync: WAL synced before any sender is answered; buffered: survives a process crash, not a power loss [default: sync].
    #[arg(long, env = "HOOKRELAY_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// TOML file with [server] settings and [[endpoint]] tables, created or updated at start.
    #[arg(long, env = "HOOKRELAY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PEM certificate chain for TLS on the ingest listener.
    #[arg(long, env = "HOOKRELAY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the ingest listener.
    #[arg(long, env = "HOOKRELAY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Bearer token for the admin listener; required when it is not on loopback.
    #[arg(
        long,
        env = "HOOKRELAY_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// Extra PEM CA certificates trusted for outbound HTTPS (private CAs).
    #[arg(long, env = "HOOKRELAY_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Delete events older than this many days (1 to 36500).
    #[arg(long, env = "HOOKRELAY_RETAIN_DAYS", value_name = "DAYS")]
    pub retain_days: Option<u64>,
    /// Keep at most this many events per endpoint (the newest).
    #[arg(long, env = "HOOKRELAY_RETAIN_PER_ENDPOINT", value_name = "N")]
    pub retain_per_endpoint: Option<usize>,
    /// Seconds a client may take to send its request head, and a connection
    /// may stay open with no request in flight (at most 3600) [default: 10].
    #[arg(long, env = "HOOKRELAY_HEADER_TIMEOUT", value_name = "SECS")]
    pub header_timeout: Option<u64>,
    /// Request bodies held in memory at once, e.g. 1GiB, 256MiB; past it ingest answers 503 (at least --max-body; mirror copies get a quarter apart) [default: 1GiB].
    #[arg(long, env = "HOOKRELAY_MAX_BODY_MEMORY", value_name = "BYTES", value_parser = parse_size)]
    pub max_body_memory: Option<usize>,
    /// Ingest answers 503 once the data directory's filesystem is this full (percent) [default: 95].
    #[arg(long, env = "HOOKRELAY_MAX_DISK_USAGE", value_name = "PERCENT")]
    pub max_disk_usage: Option<f64>,
    /// Proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client.
    #[arg(
        long,
        env = "HOOKRELAY_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = crate::forwarded::parse_net
    )]
    pub trusted_proxy: Option<Vec<ipnet::IpNet>>,
    /// Refuse to deliver to loopback, private and other non-public addresses (SSRF guard) [default: false].
    #[arg(
        long,
        env = "HOOKRELAY_DENY_PRIVATE_TARGETS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub deny_private_targets: Option<bool>,
    /// Networks (comma-separated) deliveries may reach despite the guard, e.g. 10.0.5.0/24,fd12:3456::/48.
    #[arg(
        long,
        env = "HOOKRELAY_ALLOW_TARGET_NET",
        value_name = "CIDR",
        value_delimiter = ',',
        value_parser = crate::forwarded::parse_net
    )]
    pub allow_target_net: Option<Vec<ipnet::IpNet>>,
}

/// The TOML file: `[server]` uses the flag names with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub endpoint: Vec<EndpointInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default, deserialize_with = "addr")]
    pub listen: Option<SocketAddr>,
    #[serde(default, deserialize_with = "addr")]
    pub admin: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub max_body: Option<toml::Value>,
    pub max_body_memory: Option<toml::Value>,
    pub durability: Option<Durability>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub admin_token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub retain_days: Option<u64>,
    pub retain_per_endpoint: Option<usize>,
    pub header_timeout: Option<u64>,
    pub max_disk_usage: Option<f64>,
    pub trusted_proxy: Option<Vec<String>>,
    pub deny_private_targets: Option<bool>,
    pub allow_target_net: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub data: PathBuf,
    pub max_body: usize,
    pub durability: Durability,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub admin_token: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub retain_days: Option<u64>,
    pub retain_per_endpoint: Option<usize>,
    pub header_timeout: Duration,
    /// How long a connection may wait for its socket without response
    /// progress ([`crate::idle::SEND_STALL`]); no flag, tests shorten it.
    pub send_stall: Duration,
    /// Request-body bytes ingest holds in memory at once (raised to
    /// `max_body` when lower, so that one body of the largest size fits).
    pub body_memory: usize,
    pub max_disk_usage: f64,
    pub trusted_proxies: crate::forwarded::TrustedProxies,
    /// Where deliveries may connect.
    pub target_guard: crate::deliver::guard::TargetGuard,
    /// The `--config` file, named in the errors of its endpoints.
    pub file: Option<PathBuf>,
    pub endpoints: Vec<EndpointInput>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default"),
            admin: DEFAULT_ADMIN.parse().expect("valid default"),
            data: PathBuf::from(DEFAULT_DATA),
            max_body: DEFAULT_MAX_BODY,
            durability: Durability::Sync,
            tls: None,
            admin_token: None,
            ca_file: None,
            retain_days: None,
            retain_per_endpoint: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            send_stall: crate::idle::SEND_STALL,
            body_memory: crate::memory::BODY_MEMORY,
            max_disk_usage: DEFAULT_MAX_DISK_USAGE,
            trusted_proxies: Default::default(),
            target_guard: Default::default(),
            file: None,
            endpoints: Vec::new(),
        }
    }
}

/// The longest header timeout accepted (admin bodies get three).
pub const MAX_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shortest admin token accepted.
pub const MIN_TOKEN_LEN: usize = 8;

impl Config {
    /// Merges flags/env over the file over the defaults, then validates.
    pub fn resolve(args: ServeArgs) -> Result<Config, String> {
        let file = match &args.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let s = file.server;
        let d = Config::default();
        let size = |key: &str, v: Option<toml::Value>| match v {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if n > 0 => Ok(Some(n as usize)),
            Some(toml::Value::String(t)) => parse_size(&t)
                .map(Some)
                .map_err(|e| format!("server.{key}: {e}")),
            Some(other) => Err(format!("server.{key}: {other} is not a size")),
        };
        let file_max_body = size("max_body", s.max_body)?;
        let file_body_memory = size("max_body_memory", s.max_body_memory)?;
        let tls = match (args.tls_cert.or(s.tls_cert), args.tls_key.or(s.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key must be given together".into()),
        };
        let nets = |key: &str, v: Option<Vec<String>>| {
            v.map(|nets| {
                nets.iter()
                    .map(|n| crate::forwarded::parse_net(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("server.{key}: {e}"))
            })
            .transpose()
        };
        let file_proxies = nets("trusted_proxy", s.trusted_proxy)?;
        let file_allowed = nets("allow_target_net", s.allow_target_net)?;
        let cfg = Config {
            listen: args.listen.or(s.listen).unwrap_or(d.listen),
            admin: args.admin.or(s.admin).unwrap_or(d.admin),
            data: args.data.or(s.data).unwrap_or(d.data),
            max_body: args.max_body.or(file_max_body).unwrap_or(d.max_body),
            durability: args.durability.or(s.durability).unwrap_or(d.durability),
            tls,
            // An empty flag or variable (compose's `${TOKEN}` when unset) is
            // absent: it must not switch off the file's token.
            admin_token: args
                .admin_token
                .filter(|t| !t.is_empty())
                .or(s.admin_token)
                .filter(|t| !t.is_empty()),
            ca_file: args.ca_file.or(s.ca_file),
            retain_days: args.retain_days.or(s.retain_days),
            retain_per_endpoint: args.retain_per_endpoint.or(s.retain_per_endpoint),
            header_timeout: args
                .header_timeout
                .or(s.header_timeout)
                .map(Duration::from_secs)
                .unwrap_or(d.header_timeout),
            send_stall: d.send_stall,
            body_memory: args
                .max_body_memory
                .or(file_body_memory)
                .unwrap_or(d.body_memory),
            max_disk_usage: args
                .max_disk_usage
                .or(s.max_disk_usage)
                .unwrap_or(d.max_disk_usage),
            trusted_proxies: crate::forwarded::TrustedProxies::new(
                args.trusted_proxy.or(file_proxies).unwrap_or_default(),
            ),
            target_guard: crate::deliver::guard::TargetGuard {
                deny_private: args
                    .deny_private_targets
                    .or(s.deny_private_targets)
                    .unwrap_or(d.target_guard.deny_private),
                allow: args
                    .allow_target_net
                    .or(file_allowed)
                    .unwrap_or(d.target_guard.allow),
                ..d.target_guard
            },
            file: args.config.clone(),
            // A file's `[endpoint.signature]` is the whole setting (secrets
            // aside): a line taken out of it must not live on.
            endpoints: file
                .endpoint
                .into_iter()
                .map(|mut ep| {
                    if let Some(Some(sig)) = ep.signature.take() {
                        ep.signature = Some(Some(sig.whole()));
                    }
                    ep
                })
                .collect(),
        };
        let mut seen = std::collections::HashSet::new();
        for ep in &cfg.endpoints {
            if let Some(slug) = &ep.slug
                && !seen.insert(slug.as_str())
            {
                return Err(format!(
                    "endpoint {slug:?} is declared twice in the config file"
                ));
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !self.admin.ip().is_loopback() && self.admin_token.is_none() {
            return Err(format!(
                "admin: {} is not a loopback address; the dashboard and API would be open to the network. \
                 Set --admin-token (HOOKRELAY_ADMIN_TOKEN) or bind the admin listener to 127.0.0.1",
                self.admin
            ));
        }
        // A token clients cannot send as typed (`Bearer  ` + spaces; a
        // header is ASCII, so `ä` never matches) or one guessed in a few
        // tries is no lock on a public listener.
        if let Some(t) = &self.admin_token
            && (t.len() < MIN_TOKEN_LEN || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "{}: must be at least {MIN_TOKEN_LEN} visible ASCII characters, without spaces (e.g. the output of `openssl rand -hex 16`)",
                setting("admin_token")
            ));
        }
        if self.max_body == 0 {
            return Err(format!("{}: must be at least 1 byte", setting("max_body")));
        }
        if self.header_timeout.is_zero() || self.header_timeout > MAX_HEADER_TIMEOUT {
            return Err(format!(
                "{}: must be 1 to {} seconds",
                setting("header_timeout"),
                MAX_HEADER_TIMEOUT.as_secs()
            ));
        }
        if !(self.max_disk_usage > 0.0 && self.max_disk_usage <= 100.0) {
            return Err(format!(
                "{}: must be a percentage above 0 and at most 100",
                setting("max_disk_usage")
            ));
        }
        // Bounded: days become milliseconds, and an overflow would make the
        // age limit 0 — every event pruned.
        if let Some(days) = self.retain_days
            && !(1..=MAX_RETAIN_DAYS).contains(&days)
        {
            return Err(format!(
                "{}: {days} must be between 1 and {MAX_RETAIN_DAYS}",
                setting("retain_days")
            ));
        }
        if self.retain_per_endpoint == Some(0) {
            return Err(format!(
                "{}: must be at least 1",
                setting("retain_per_endpoint")
            ));
        }
        Ok(())
    }
}

/// A server setting as each of its sources names it (file key, flag,
/// environment variable): a refusal says where to change it however it
/// was given.
fn setting(key: &str) -> String {
    format!(
        "{key} (--{}, HOOKRELAY_{})",
        key.replace('_', "-"),
        key.to_ascii_uppercase()
    )
}

fn load_file(path: &Path) -> Result<FileConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
    // The key's path is kept beside the error: serde names only the
    // field, and `tolerance_s` says little in a file of twenty endpoints.
    let (e, key) = match toml::de::Deserializer::parse(&text)
        .map_err(|e| (e, String::new()))
        .and_then(|de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = e.path().to_string();
                (e.into_inner(), key)
            })
        }) {
        Ok(config) => return Ok(config),
        Err(failed) => failed,
    };
    // Not toml's own rendering: it quotes the offending line, which may
    // hold a signing secret or the admin token, into a log or terminal.
    let at = e.span().map_or(String::new(), |span| {
        let before = &text[..span.start.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" (line {line}, column {column})")
    });
    let key = field_prefix(&key);
    Err(format!(
        "config {}: {key}{}{at}",
        path.display(),
        without_quoted(e.message())
    ))
}

/// `path: ` before a message about a field (a `serde_path_to_error` path,
/// in a config file or an API body); nothing at the top level.
pub(crate) fn field_prefix(path: &str) -> String {
    match path {
        "" | "." => String::new(),
        path => format!("{path}: "),
    }
}

/// `msg` with every quoted value left out (`string "…"`, `integer `…``):
/// a value of the wrong type may be a secret or a token. Names in
/// backticks (fields, types) stay: they have letters and are short.
pub(crate) fn without_quoted(msg: &str) -> String {
    // A string runs to the next `"` not escaped: serde and toml quote a
    // value as `{:?}` does, so a `"` inside it is `\"` (splitting on every
    // `"` let the part between two inner quotes through).
    let mut strings = String::with_capacity(msg.len());
    let mut chars = msg.chars();
    while let Some(c) = chars.next() {
        strings.push(c);
        if c != '"' {
            continue;
        }
        strings.push('…');
        let mut escaped = false;
        for c in chars.by_ref() {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    strings.push('"');
                    break;
                }
                _ => {}
            }
        }
    }
    strings
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            let name = part.len() <= 24 && part.chars().any(|c| c.is_ascii_alphabetic());
            if i % 2 == 1 && !name { "…" } else { part }
        })
        .collect::<Vec<_>>()
        .join("`")
}

/// A listener address: `127.0.0.1:8080`, `[::1]:8080`, or a host name
/// such as `localhost:8080` (its IPv4 address when it has one).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let bad = || format!("{s:?} is not an address such as 127.0.0.1:8080 or localhost:8080");
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(s)
        .map_err(|_| bad())?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(bad)
}

fn addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| parse_addr(&s).map_err(serde::de::Error::custom))
        .transpose()
}

/// Sizes as bytes or with a unit: `1024`, `512KiB`, `25MiB`, `1MB`, `2GiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size such as 25MiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `args` resolved with a config file holding `text`.
    fn with_file(text: &str, args: ServeArgs) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookrelay.toml");
        std::fs::write(&path, text).unwrap();
        Config::resolve(ServeArgs {
            config: Some(path),
            ..args
        })
    }

    #[test]
    fn the_body_memory_comes_from_the_flag_or_the_file() {
        let file = "[server]\nmax_body_memory = \"256MiB\"\n";
        let from_file = with_file(file, ServeArgs::default()).unwrap();
        assert_eq!(from_file.body_memory, 256 << 20);
        let from_flag = with_file(
            file,
            ServeArgs {
                max_body_memory: Some(64 << 20),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(from_flag.body_memory, 64 << 20, "the flag wins");
        assert_eq!(
            Config::resolve(ServeArgs::default()).unwrap().body_memory,
            crate::memory::BODY_MEMORY
        );
    }

    #[test]
    fn listeners_take_ip_addresses_and_host_names() {
        assert_eq!(
            parse_addr("127.0.0.1:8080"),
            Ok("127.0.0.1:8080".parse().unwrap())
        );
        assert_eq!(parse_addr("[::1]:9"), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(
            parse_addr("localhost:8081"),
            Ok("127.0.0.1:8081".parse().unwrap())
        );
        for bad in [
            "8080",
            "localhost",
            "nonexistent.invalid:80",
            "1.2.3.4:99999",
        ] {
            let err = parse_addr(bad).unwrap_err();
            assert!(err.contains("localhost:8080"), "{bad}: {err}");
        }
        let cfg = with_file(
            "[server]\nadmin = \"localhost:9001\"\n",
            ServeArgs::default(),
        )
        .unwrap();
        assert_eq!(cfg.admin, "127.0.0.1:9001".parse().unwrap());
    }

    /// toml's own message quotes the offending line: a secret beside a
    /// typo went to the terminal or log.
    #[test]
    fn config_errors_never_show_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        for body in [
            "[[endpoint]]\nslug = \"s\"\nsignature = { scheme = \"stripe\", secret = \"whsec_TOPSECRET\", tolerance_s = \"300\" }\n",
            "[[endpoint]]\nslug = \"s\"\nsignature = { scheme = \"stripe\", secrets = \"whsec_TOPSECRET\" }\n",
            "[server]\nadmin_token = \"TOPSECRET-token\"\nlisten = 8080\n",
            "[server]\nadmin_token = 98765432109876\n",
            "[[endpoint]]\nslug = \"s\"\nsignature = { scheme = \"stripe\", secret = 31415926535897 }\n",
            // Quotes inside the value: the part between them stays hidden.
            "[[endpoint]]\nslug = \"s\"\nsignature = { scheme = \"stripe\", secrets = 'a\"TOPSECRET\"b' }\n",
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, body).unwrap();
            let err = load_file(&path).unwrap_err();
            assert!(!err.contains("TOPSECRET"), "{err}");
            assert!(
                !err.contains("98765432109876") && !err.contains("31415926535897"),
                "{err}"
            );
            assert!(err.contains("line "), "{err}");
        }
    }

    #[test]
    fn quoted_values_are_left_out_with_their_escaped_quotes() {
        let msg = r#"invalid type: string "pa\"TOPSECRET\"ss", expected a sequence"#;
        assert_eq!(
            without_quoted(msg),
            r#"invalid type: string "…", expected a sequence"#
        );
        assert_eq!(
            without_quoted("invalid type: integer `31415`, expected `secret`"),
            "invalid type: integer `…`, expected `secret`"
        );
    }

    /// A value of the wrong type is named by its whole key: serde's own
    /// message names only the field, or only the type it expected.
    #[test]
    fn config_type_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        for (body, key) in [
            (
                "[[endpoint]]\nslug = \"a\"\n[[endpoint]]\nslug = \"b\"\nsignature = { scheme = \"stripe\", secret = \"s\", tolerance_s = \"300\" }\n",
                "endpoint[1].signature.tolerance_s: ",
            ),
            ("[server]\nretain_days = \"7\"\n", "server.retain_days: "),
            ("[[endpoint]]\nslug = 5\n", "endpoint[0].slug: "),
        ] {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, body).unwrap();
            let err = load_file(&path).unwrap_err();
            assert!(err.contains(key), "{key} not in {err}");
            assert!(err.contains("line "), "{err}");
        }
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\ntrusted_proxy = [\"10.0.0.0/8\", \"::1\"]\n",
        )
        .unwrap();
        let args = |flag: Option<Vec<ipnet::IpNet>>| ServeArgs {
            config: Some(path.clone()),
            trusted_proxy: flag,
            ..Default::default()
        };
        let cfg = Config::resolve(args(None)).unwrap();
        assert_eq!(cfg.trusted_proxies.nets().len(), 2);
        let flag = vec![crate::forwarded::parse_net("192.0.2.1").unwrap()];
        let cfg = Config::resolve(args(Some(flag.clone()))).unwrap();
        assert_eq!(cfg.trusted_proxies.nets(), &flag[..]);
        std::fs::write(&path, "[server]\ntrusted_proxy = [\"proxy.local\"]\n").unwrap();
        let err = Config::resolve(args(None)).unwrap_err();
        assert!(err.contains("server.trusted_proxy"), "{err}");
    }

    #[test]
    fn the_target_guard_comes_from_the_file_or_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\ndeny_private_targets = true\nallow_target_net = [\"10.0.5.0/24\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let g = Config::resolve(args.clone()).unwrap().target_guard;
        assert!(g.deny_private);
        assert_eq!(
            g.allow,
            vec!["10.0.5.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        let g = Config::resolve(ServeArgs {
            deny_private_targets: Some(false),
            ..args.clone()
        })
        .unwrap()
        .target_guard;
        assert!(!g.deny_private, "the flag wins over the file");
        let g = Config::resolve(ServeArgs {
            allow_target_net: Some(vec!["192.0.2.0/24".parse().unwrap()]),
            ..args.clone()
        })
        .unwrap()
        .target_guard;
        assert_eq!(
            g.allow,
            vec!["192.0.2.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        let none = Config::resolve(ServeArgs::default()).unwrap().target_guard;
        assert!(!none.deny_private && none.allow.is_empty() && !none.off);
        // The bare flag means true.
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "hookrelay",
            "serve",
            "--deny-private-targets",
            "--allow-target-net",
            "10.0.0.0/8,fd00::/8",
        ]);
        let crate::cli::Command::Serve(serve) = cli.unwrap().command else {
            panic!("not serve");
        };
        assert_eq!(serve.deny_private_targets, Some(true));
        assert_eq!(serve.allow_target_net.unwrap().len(), 2);
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from([
            "hookrelay",
            "serve",
            "--deny-private-targets=false",
        ]);
        let crate::cli::Command::Serve(serve) = cli.unwrap().command else {
            panic!("not serve");
        };
        assert_eq!(serve.deny_private_targets, Some(false));
        std::fs::write(&path, "[server]\nallow_target_net = [\"intranet\"]\n").unwrap();
        let err = Config::resolve(args).unwrap_err();
        assert!(err.contains("server.allow_target_net"), "{err}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("25MiB"), Ok(25 * 1024 * 1024));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn an_empty_token_variable_leaves_the_file_token() {
        let cfg = with_file(
            "[server]\nadmin_token = \"s3cret-token\"\n",
            ServeArgs {
                admin_token: Some(String::new()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.admin_token.as_deref(), Some("s3cret-token"));
    }

    #[test]
    fn a_header_timeout_past_an_hour_is_refused() {
        for secs in [0, 3601, u64::MAX] {
            let err = Config::resolve(ServeArgs {
                header_timeout: Some(secs),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.contains("header_timeout"), "{secs}: {err}");
        }
    }

    #[test]
    fn a_short_or_blank_token_is_refused() {
        for token in [
            " ",
            "        ",
            "short",
            "has space in it",
            "tab\there-x",
            "pässwört123",
            "äöüß",
        ] {
            let err = Config::resolve(ServeArgs {
                admin_token: Some(token.into()),
                ..Default::default()
            })
            .unwrap_err();
            assert!(err.contains("admin_token"), "{token:?}: {err}");
        }
        let cfg = Config::resolve(ServeArgs {
            admin_token: Some("0123456789abcdef".into()),
            ..Default::default()
        })
        .unwrap();
        assert!(cfg.admin_token.is_some());
    }

    #[test]
    fn retain_days_that_would_overflow_are_refused() {
        for days in [MAX_RETAIN_DAYS + 1, 1 << 54, u64::MAX] {
            let err = Config::resolve(ServeArgs {
                retain_days: Some(days),
                ..Default::default()
            })
            .unwrap_err();
            assert!(
                err.contains("retain_days (--retain-days, HOOKRELAY_RETAIN_DAYS)"),
                "{err}"
            );
        }
        assert!(
            Config::resolve(ServeArgs {
                retain_days: Some(MAX_RETAIN_DAYS),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn an_endpoint_declared_twice_is_refused() {
        let err = with_file(
            "[[endpoint]]\nslug = \"a\"\n[[endpoint]]\nslug = \"b\"\n[[endpoint]]\nslug = \"a\"\n",
            ServeArgs::default(),
        )
        .unwrap_err();
        assert!(err.contains("\"a\" is declared twice"), "{err}");
    }

    #[test]
    fn admin_off_loopback_needs_a_token() {
        let mut args = ServeArgs {
            admin: Some("0.0.0.0:8081".parse().unwrap()),
            ..Default::default()
        };
        let err = Config::resolve(args.clone()).unwrap_err();
        assert!(err.contains("--admin-token"), "{err}");
        args.admin_token = Some("s3cret-token".into());
        assert!(Config::resolve(args).is_ok());
    }

    #[test]
    fn file_fills_what_flags_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookrelay.toml");
        std::fs::write(
            &path,
            r#"
[server]
listen = "127.0.0.1:9000"
max_body = "1MiB"
durability = "buffered"

[[endpoint]]
slug = "shop"
target = "http://127.0.0.1:3000/hooks"
failure_threshold = 6
success_codes = ["200-302"]
"#,
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Default::default()
        };
        let cfg = Config::resolve(args).unwrap();
        assert_eq!(cfg.listen.port(), 9999, "flag wins over file");
        assert_eq!(cfg.max_body, 1024 * 1024);
        assert_eq!(cfg.durability, Durability::Buffered);
        assert_eq!(cfg.endpoints.len(), 1);
        assert_eq!(cfg.endpoints[0].failure_threshold, Some(6));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = with_file("[server]\nlisten_typo = 1\n", ServeArgs::default()).unwrap_err();
        assert!(err.contains("listen_typo"), "{err}");
    }

    /// The defaults `--help` names are the ones applied (the flags take
    /// none from clap, so that a config file can fill them).
    #[test]
    fn help_names_the_defaults_applied() {
        use clap::CommandFactory;
        let help = crate::cli::Cli::command()
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        for shown in [
            format!("[default: {DEFAULT_LISTEN}]"),
            format!("[default: {DEFAULT_ADMIN}]"),
            format!("[default: {DEFAULT_DATA}]"),
            format!("[default: {}MiB]", DEFAULT_MAX_BODY >> 20),
            format!("[default: {}]", DEFAULT_HEADER_TIMEOUT.as_secs()),
            format!("[default: {DEFAULT_MAX_DISK_USAGE}]"),
            format!("[default: {}GiB]", crate::memory::BODY_MEMORY >> 30),
            "[default: sync]".to_string(),
        ] {
            assert!(help.contains(&shown), "{shown} missing from:\n{help}");
        }
        assert_eq!(Config::default().durability, crate::store::Durability::Sync);
    }
}
