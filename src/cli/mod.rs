//! The `hookrelay` command line: `serve`, and client commands that talk to a
//! running server's admin API (`--server`, default `http://127.0.0.1:8081`).
//! `--json` prints the API's JSON for scripts; without it, short tables.

/// Prints a line of human output through [`printable`].
macro_rules! say {
    ($($t:tt)*) => {
        $crate::cli::out(&format!("{}\n", $crate::cli::printable(&format!($($t)*))))
    };
}

/// Writes to standard output. A reader that stopped reading (`| head`)
/// ends the command quietly, as it would end `cat`: no panic, no backtrace.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

mod backup;
mod bulk;
mod outfile;
mod remote;
mod tail;
mod verify;

use std::borrow::Cow;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::config::{Config, ServeArgs};
use crate::server::{Listeners, serve};
use outfile::OutFile;
use remote::Remote;

#[derive(Parser, Debug)]
#[command(
    name = "hookrelay",
    version,
    about = "Webhook inspection and replay proxy",
    after_help = "The commands other than serve and verify talk to a running server's admin API: \
--server URL (HOOKRELAY_SERVER, default http://127.0.0.1:8081), --token TOKEN \
(HOOKRELAY_ADMIN_TOKEN) when it has an admin token, --json for scripts; before or after \
the command (hookrelay --server URL events)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy: ingest and admin listeners.
    Serve(ServeArgs),
    /// Create, list, change and delete endpoints.
    Endpoint {
        #[command(subcommand)]
        cmd: EndpointCmd,
    },
    /// List events, newest first.
    Events(EventsArgs),
    /// Show one event with its attempts.
    Show {
        id: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Re-send one stored event (`replay ID`), or every event matching
    /// `--filter` as a bulk job with progress.
    #[command(
        override_usage = "hookrelay replay [OPTIONS] <ID>\n       hookrelay replay [OPTIONS] --filter <KEY=VALUE>..."
    )]
    Replay {
        /// The event id; omit it and give --filter for a bulk replay.
        #[arg(required_unless_present = "filter")]
        id: Option<String>,
        /// Bulk: a filter of `hookrelay events`, as key=value (repeat), e.g. --filter endpoint=shop --filter state=failed; --filter all=true for every stored event.
        #[arg(long, value_name = "KEY=VALUE", conflicts_with = "id")]
        filter: Vec<String>,
        /// Bulk: only count what matches.
        #[arg(long, requires = "filter")]
        dry_run: bool,
        /// Bulk: events per second.
        #[arg(long, requires = "filter")]
        rate: Option<f64>,
        /// Send to this URL instead of the endpoint's target (does not count toward the policy).
        #[arg(long = "to", value_name = "URL")]
        to: Option<String>,
        /// Re-sign timestamped schemes (stripe, standard, slack, paddle, hmac-sha256 with a timestamp header) with a fresh timestamp.
        #[arg(long)]
        resign: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Check a webhook signature offline; prints the verdict as JSON, exit 0 only when valid.
    Verify(verify::VerifyArgs),
    /// Follow new events and attempts live.
    Tail {
        #[arg(long)]
        endpoint: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Export events as JSON Lines or HAR.
    Export(ExportArgs),
    /// Download a backup of the whole store from the running server: a tar
    /// archive of a consistent copy (endpoints, events, attempts, jobs).
    Backup {
        /// Write it here (`-`: standard output) [default:
        /// hookrelay-backup-<UTC time>.tar].
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Restore a backup into a new data directory, then start `hookrelay
    /// serve --data DIR` on it. Works offline; checks the archive whole
    /// before anything is put in place.
    Restore {
        /// The archive `hookrelay backup` wrote (`-`: standard input).
        file: std::path::PathBuf,
        /// The data directory to create; it must not exist or be empty.
        #[arg(
            long,
            env = "HOOKRELAY_DATA",
            value_name = "DIR",
            default_value = "./hookrelay-data"
        )]
        data: std::path::PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct RemoteArgs {
    /// Admin API of the running server.
    #[arg(
        long,
        env = "HOOKRELAY_SERVER",
        default_value = "http://127.0.0.1:8081",
        global = true
    )]
    pub server: String,
    /// Admin token, when the server requires one.
    #[arg(
        long,
        env = "HOOKRELAY_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print JSON (the API's records) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCmd {
    /// Create an endpoint (a bin when no --target is given).
    Add(Box<AddArgs>),
    /// List endpoints.
    List {
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show one endpoint.
    Show {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Change an endpoint's settings: only the fields given change.
    Edit(Box<EditArgs>),
    /// Stop forwarding; events are held (sender gets 202).
    Pause {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Disable by hand (as the failure policy would); events are held until
    /// `resume`.
    Disable {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Resume a paused or disabled endpoint and reset its failure count.
    Resume {
        slug: String,
        /// Also send the held events, in arrival order.
        #[arg(long)]
        release: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Send held events in arrival order.
    Release {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Send a small signed test ping to the endpoint's target.
    Ping {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Delete an endpoint (its stored events stay).
    Rm {
        slug: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args, Debug)]
pub struct AddArgs {
    pub slug: String,
    /// Create it paused: events are stored and held (sender gets 202) until
    /// `endpoint resume`, e.g. while its target is being set up.
    #[arg(long)]
    pub paused: bool,
    #[command(flatten)]
    pub flags: EndpointFlags,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `endpoint edit`: the flags of `endpoint add`, each changing only its own
/// field, and the `--no-…` flags that clear an optional one.
#[derive(Args, Debug)]
pub struct EditArgs {
    pub slug: String,
    #[command(flatten)]
    pub flags: EndpointFlags,
    /// Drop the target: the endpoint becomes a bin.
    #[arg(long, conflicts_with = "target")]
    pub no_target: bool,
    /// Drop the mirror URL.
    #[arg(long, conflicts_with = "mirror")]
    pub no_mirror: bool,
    /// Drop the notification URL.
    #[arg(long, conflicts_with = "notify_url")]
    pub no_notify_url: bool,
    /// Stop checking signatures.
    #[arg(long, conflicts_with_all = [
        "signature_scheme", "secret", "enforce", "signature_tolerance", "signature_header",
        "signature_encoding", "signature_prefix", "signature_timestamp_header", "legacy_sha1",
    ])]
    pub no_signature: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The endpoint settings `endpoint add` and `endpoint edit` take.
#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("secret").multiple(true)))]
pub struct EndpointFlags {
    /// Forward to this URL; without it the endpoint is a bin.
    #[arg(long)]
    pub target: Option<String>,
    /// A name for people (default "Endpoint created on {date} @ {time}").
    #[arg(long)]
    pub name: Option<String>,
    /// Milliseconds a delivery may take, connect to complete answer
    /// (default 10000).
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// Disabled when consecutive failures exceed this (default 5: on the 6th).
    #[arg(long)]
    pub failure_threshold: Option<u32>,
    /// Comma-separated, e.g. 2xx,301,302 or 200-302.
    #[arg(long, value_delimiter = ',')]
    pub success_codes: Option<Vec<String>>,
    /// Receives a JSON POST when the endpoint is disabled.
    #[arg(long)]
    pub notify_url: Option<String>,
    /// Status a bin answers.
    #[arg(long)]
    pub response_status: Option<u16>,
    /// Body a bin answers.
    #[arg(long)]
    pub response_body: Option<String>,
    /// Statuses a bin cycles through, e.g. 500,500,200.
    #[arg(long, value_delimiter = ',')]
    pub response_sequence: Option<Vec<u16>>,
    /// A header a bin answers with, "Name: value"; repeat for more (they
    /// replace the ones it had; '' alone: none).
    #[arg(long, value_name = "NAME: VALUE")]
    pub response_header: Vec<String>,
    /// Milliseconds a bin waits before it answers.
    #[arg(long, value_name = "MS")]
    pub response_delay_ms: Option<u64>,
    /// Queue mode: deliveries in flight at once (default 4).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Queue mode: pending events past which ingest answers 503 (default 100000).
    #[arg(long, value_name = "N")]
    pub max_queue_depth: Option<u64>,
    /// forward (wait for the target) or queue (202 at once, deliver in the background).
    #[arg(long, value_parser = ["forward", "queue"])]
    pub mode: Option<String>,
    /// Queue mode: retry delays, comma-separated, e.g. 5s,1m,10m.
    #[arg(long, value_delimiter = ',')]
    pub retry: Option<Vec<String>>,
    /// Queue mode: one delivery at a time, in arrival order
    /// (`--ordered=false` turns it off).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ordered: Option<bool>,
    /// A second URL that gets a copy of every event.
    #[arg(long)]
    pub mirror: Option<String>,
    /// Signature scheme to verify (woocommerce, github, stripe, shopify, standard, slack, paddle, hmac-sha256, auto).
    #[arg(long)]
    pub signature_scheme: Option<String>,
    /// Signing secret; repeat for rotation. On a shared machine prefer
    /// --signature-secret-file: a command line is visible to other users.
    #[arg(long, group = "secret")]
    pub signature_secret: Vec<String>,
    /// A file holding a signing secret (one trailing newline is ignored); repeat for rotation.
    #[arg(long, group = "secret")]
    pub signature_secret_file: Vec<std::path::PathBuf>,
    /// Answer 401 (and store as rejected) when the signature is not valid
    /// (`--enforce=false` turns it off).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub enforce: Option<bool>,
    /// Timestamp tolerance in seconds (default 300; 0 turns the check off).
    #[arg(long)]
    pub signature_tolerance: Option<u64>,
    /// hmac-sha256: the signature header ('' for the default,
    /// X-Signature).
    #[arg(long)]
    pub signature_header: Option<String>,
    /// hmac-sha256: hex or base64 ('' for the default, hex).
    #[arg(long)]
    pub signature_encoding: Option<String>,
    /// hmac-sha256: text before the MAC, e.g. sha256= ('' for none).
    #[arg(long)]
    pub signature_prefix: Option<String>,
    /// hmac-sha256: header with a timestamp signed as `ts.body` ('' for
    /// none: the body alone is signed).
    #[arg(long)]
    pub signature_timestamp_header: Option<String>,
    /// github (and auto): also accept the SHA-1 `X-Hub-Signature` when the
    /// SHA-256 one is absent (`--legacy-sha1=false` turns it off).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub legacy_sha1: Option<bool>,
    /// Send a test ping when created or resumed (`--ping-on-activate=false`
    /// turns it off).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ping_on_activate: Option<bool>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[arg(long)]
    pub cursor: Option<String>,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The filters of `GET /api/events`, shared by `events` and `export`.
#[derive(Args, Debug)]
pub struct FilterArgs {
    #[arg(long)]
    pub endpoint: Option<String>,
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub method: Option<String>,
    /// Last response status.
    #[arg(long)]
    pub status: Option<u16>,
    /// Signature verdict: valid, invalid, stale, missing, unchecked.
    #[arg(long)]
    pub signature: Option<String>,
    /// RFC 3339 time, epoch milliseconds, or a duration back from now
    /// (15m, 2h, 3d).
    #[arg(long)]
    pub since: Option<String>,
    /// As --since.
    #[arg(long)]
    pub until: Option<String>,
    /// Text search in path, query, headers and bodies.
    #[arg(short, long)]
    pub q: Option<String>,
    /// A field of a JSON body, PATH or PATH:VALUE (dot-separated keys,
    /// array positions as numbers, `\` before a `.` or `:` inside a key),
    /// e.g. data.object.id:evt_123.
    #[arg(long, value_name = "PATH[:VALUE]")]
    pub field: Option<String>,
    /// Only duplicates of an earlier event (true) or only first deliveries
    /// (false).
    #[arg(long, value_name = "BOOL")]
    pub duplicate: Option<bool>,
    /// Only events whose mirror answered differently from the target (true)
    /// or the same (false).
    #[arg(long, value_name = "BOOL")]
    pub mirror_diff: Option<bool>,
}

impl FilterArgs {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = Vec::new();
        let opt = [
            ("endpoint", &self.endpoint),
            ("state", &self.state),
            ("topic", &self.topic),
            ("method", &self.method),
            ("signature", &self.signature),
            ("since", &self.since),
            ("until", &self.until),
            ("q", &self.q),
            ("field", &self.field),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                q.push((k, v.clone()));
            }
        }
        if let Some(s) = self.status {
            q.push(("status", s.to_string()));
        }
        if let Some(d) = self.duplicate {
            q.push(("duplicate", d.to_string()));
        }
        if let Some(d) = self.mirror_diff {
            q.push(("mirror_diff", d.to_string()));
        }
        q
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// jsonl (one event per line, with bodies and attempts) or har.
    #[arg(long, default_value = "jsonl")]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<std::path::PathBuf>,
    /// Only the newest N matching events.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start after this page of the events list (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
    /// Every matching event: past the server's cap of 10,000 per answer,
    /// the older ones are fetched after (one HAR document, or JSON Lines
    /// newest first).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// The client flags every client command takes ([`RemoteArgs`]); those
/// taking a value.
const CLIENT_FLAGS: [(&str, bool); 3] = [("--server", true), ("--token", true), ("--json", false)];

/// Moves client flags written before the command (`hookrelay --server URL
/// events`, as kubectl and git take theirs) to after it, where clap reads
/// them: they belong to each client command, so that `serve` and `verify`,
/// which take none, refuse them.
pub fn client_flags_last(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut moved = Vec::new();
    let mut rest = args.into_iter();
    out.extend(rest.next());
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        let flag = CLIENT_FLAGS.iter().find(|(name, _)| {
            text == *name || (text.starts_with(name) && text[name.len()..].starts_with('='))
        });
        match flag {
            Some((name, takes_value)) => {
                let inline = text.len() > name.len();
                moved.push(arg);
                if *takes_value && !inline {
                    moved.extend(rest.next());
                }
            }
            // The command (or anything else, such as --help): the rest
            // stays as written.
            None => {
                out.push(arg);
                break;
            }
        }
    }
    out.extend(rest);
    out.extend(moved);
    out
}

/// The environment variable a refused value came from, when the flag clap
/// names was not on the command line: clap's message names only the flag,
/// which a user who set `HOOKRELAY_LISTEN=` would look for in vain.
fn from_environment(e: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    env_source(arg.split_whitespace().next()?.strip_prefix("--")?, args)
}

/// [`from_environment`] for the errors found once the values are parsed
/// (a `--ca-file` that cannot be read, a `--config` file that is not TOML):
/// they start with the flag they are about (`config` for the file).
fn after_parsing_from_environment(message: &str, args: &[std::ffi::OsString]) -> Option<String> {
    let long = match message.strip_prefix("--") {
        Some(flagged) => flagged.split_whitespace().next()?,
        None if message.starts_with("config ") => "config",
        None => return None,
    };
    env_source(long, args)
}

/// The variable `--long` was read from: none when the flag was typed on the
/// command line, or its variable is not set.
fn env_source(long: &str, args: &[std::ffi::OsString]) -> Option<String> {
    let typed = args.iter().any(|a| {
        a.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        })
    });
    if typed {
        return None;
    }
    fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
    }
    let var = env_of(&<Cli as clap::CommandFactory>::command(), long)?;
    std::env::var_os(&var).is_some().then_some(var)
}

/// Entry point for the binary: parse, set up tracing, run.
pub fn main() -> ExitCode {
    let args = client_flags_last(std::env::args_os().collect());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if let Some(var) = from_environment(&e, &args) {
                eprintln!("(that value came from the environment variable {var})");
            }
            std::process::exit(e.exit_code());
        }
    };
    const DEFAULT_LOG: &str = "hookrelay=info,warn";
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => {
            tracing_subscriber::EnvFilter::try_new(&v).unwrap_or_else(|e| {
                // Said once, not silently replaced: a typo would otherwise
                // look like a quiet server.
                eprintln!("RUST_LOG={v:?} is not a log filter ({e}); using {DEFAULT_LOG}");
                tracing_subscriber::EnvFilter::new(DEFAULT_LOG)
            })
        }
        _ => tracing_subscriber::EnvFilter::new(DEFAULT_LOG),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person: a log file or journal gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", printable(&e));
            if let Some(var) = after_parsing_from_environment(&e, &args) {
                eprintln!("(that value came from the environment variable {var})");
            }
            ExitCode::FAILURE
        }
    }
}

pub async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve(args) => {
            let config = Config::resolve(args)?;
            let listeners = Listeners::bind(&config).await?;
            let shutdown = async {
                shutdown_signal().await;
                // A second signal is an operator who will not wait for the
                // drain: acknowledged events are on disk (or, buffered, in
                // the OS) already, so stopping now loses none of them.
                tokio::spawn(async {
                    shutdown_signal().await;
                    eprintln!(
                        "hookrelay: second signal, exiting without finishing in-flight requests"
                    );
                    std::process::exit(130);
                });
            };
            serve(config, listeners, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Endpoint { cmd } => endpoint(cmd).await,
        Command::Events(a) => {
            let r = Remote::new(&a.remote)?;
            let mut q = a.filter.pairs();
            if let Some(c) = &a.cursor {
                q.push(("cursor", c.clone()));
            }
            q.push(("limit", a.limit.to_string()));
            let v = r
                .get(&format!("/api/events?{}", remote::query_string(&q)))
                .await?;
            if a.remote.json {
                say!("{v}");
            } else {
                print_events(&v);
            }
            if v["events"].as_array().is_some_and(|e| e.is_empty()) {
                note_unknown_endpoint(&r, a.filter.endpoint.as_deref()).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id, remote } => {
            let r = Remote::new(&remote)?;
            let v = r
                .get(&format!("/api/events/{}", remote::path_segment(&id)))
                .await?;
            if remote.json {
                say!("{v}");
            } else {
                print_event(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        // Exit 1 means "not valid"; input it cannot check is a usage error
        // (2, as clap's own), so scripts can tell the two apart.
        Command::Verify(a) => verify::run(a).or_else(|e| {
            eprintln!("error: {}", printable(&e));
            Ok(ExitCode::from(2))
        }),
        Command::Tail { endpoint, remote } => tail::run(&remote, endpoint.as_deref()).await,
        Command::Export(a) => {
            let r = Remote::new(&a.remote)?;
            let mut q = a.filter.pairs();
            q.push(("format", a.format.clone()));
            if let Some(n) = a.limit {
                q.push(("limit", n.to_string()));
            }
            let file = a.output.as_deref().map(OutFile::open).transpose()?;
            let text = export_pages(&r, q, a.cursor.clone(), a.all, a.format == "har").await?;
            // A HAR with no entries is still a document.
            let empty = text.trim().is_empty()
                || serde_json::from_str::<Value>(&text)
                    .is_ok_and(|v| v["log"]["entries"].as_array().is_some_and(Vec::is_empty));
            match file {
                Some(file) => file.write(text.as_bytes())?,
                None => out(&printable(&text)),
            }
            if empty {
                note_unknown_endpoint(&r, a.filter.endpoint.as_deref()).await;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { output, remote } => backup::download(output, &remote).await,
        Command::Restore { file, data } => backup::restore(&file, &data),
        Command::Replay {
            id,
            filter,
            dry_run,
            rate,
            to,
            resign,
            remote,
        } => {
            let r = Remote::new(&remote)?;
            let Some(id) = id else {
                return bulk::run(&r, &remote, &filter, dry_run, rate, to, resign).await;
            };
            // clap's `requires` does not hold against a positional here:
            // without this, `replay ID --dry-run` replayed for real.
            if dry_run || rate.is_some() {
                return Err(
                    "--dry-run and --rate are for bulk replays: give --filter instead of an event id"
                        .into(),
                );
            }
            let body = json!({ "target": to, "resign": resign });
            let v = r
                .send(
                    "POST",
                    &format!("/api/events/{}/replay", remote::path_segment(&id)),
                    Some(body),
                )
                .await?;
            if remote.json {
                say!("{v}");
            } else {
                let a = &v["attempt"];
                if let Some(note) = v["resign"].as_str() {
                    say!("resign: {note}");
                }
                say!(
                    "attempt {} to {}: {}",
                    a["n"],
                    a["url"].as_str().unwrap_or(""),
                    outcome(a)
                );
            }
            Ok(if v["attempt"]["success"] == json!(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

async fn endpoint(cmd: EndpointCmd) -> Result<ExitCode, String> {
    let (remote, v) = match cmd {
        EndpointCmd::Add(a) => {
            let r = Remote::new(&a.remote)?;
            let mut body = endpoint_fields(a.flags, false)?;
            body.insert("slug".into(), a.slug.into());
            if a.paused {
                body.insert("status".into(), "paused".into());
            }
            let created = r
                .send("POST", "/api/endpoints", Some(body.into()))
                .await
                .map_err(|e| with_flag_names(&e))?;
            (a.remote, created)
        }
        EndpointCmd::List { remote } => {
            let v = Remote::new(&remote)?.get("/api/endpoints").await?;
            if remote.json {
                say!("{v}");
            } else {
                say!(
                    "{:<24} {:<9} {:>6} {:>6} {:>6} {:>5}  TARGET",
                    "SLUG",
                    "STATUS",
                    "RECV",
                    "OK",
                    "FAIL",
                    "HELD"
                );
                for e in v["endpoints"].as_array().into_iter().flatten() {
                    let n = |k: &str| e["counts"][k].as_i64().unwrap_or(0);
                    say!(
                        "{:<24} {:<9} {:>6} {:>6} {:>6} {:>5}  {}",
                        e["slug"].as_str().unwrap_or(""),
                        e["status"].as_str().unwrap_or(""),
                        n("received"),
                        n("delivered"),
                        n("failed"),
                        n("held"),
                        e["target"].as_str().unwrap_or("(bin)"),
                    );
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        EndpointCmd::Show { slug, remote } => {
            let r = Remote::new(&remote)?;
            (
                remote,
                r.get(&format!("/api/endpoints/{}", remote::path_segment(&slug)))
                    .await?,
            )
        }
        EndpointCmd::Edit(e) => {
            let r = Remote::new(&e.remote)?;
            let path = format!("/api/endpoints/{}", remote::path_segment(&e.slug));
            let f = e.flags;
            let response_given = f.response_given();
            let signature_given = f.signature_given();
            // A bin's answer is taken whole by the API: the flags given
            // change their part of the endpoint's own. (A signature edit
            // keeps what is not given on the server's side; read here only
            // to say that a first one needs its scheme.)
            let current = if response_given || signature_given {
                Some(r.get(&path).await?)
            } else {
                None
            };
            let checks = current.as_ref().is_some_and(|c| c["signature"].is_object());
            let mut body = endpoint_fields(f, checks)?;
            if let (Some(Value::Object(given)), Some(cur)) = (body.get_mut("response"), &current)
                && let Value::Object(mut merged) = cur["response"].clone()
            {
                // A status given alone is the answer: a sequence left in
                // place would still decide it.
                if given.contains_key("status") && !given.contains_key("sequence") {
                    merged.insert("sequence".into(), json!([]));
                }
                merged.append(given);
                *given = merged;
            }
            for (clear, field) in [
                (e.no_target, "target"),
                (e.no_mirror, "mirror"),
                (e.no_notify_url, "notify_url"),
                (e.no_signature, "signature"),
            ] {
                if clear {
                    body.insert(field.into(), Value::Null);
                }
            }
            if body.is_empty() {
                return Err(format!(
                    "nothing to change: give the settings to change (see `hookrelay endpoint edit --help`), e.g. `hookrelay endpoint edit {} --target URL`",
                    e.slug
                ));
            }
            let changed = r
                .send("PATCH", &path, Some(body.into()))
                .await
                .map_err(|err| with_flag_names(&err))?;
            (e.remote, changed)
        }
        EndpointCmd::Pause { slug, remote } => {
            let v = set_status(&remote, &slug, "paused").await?;
            (remote, v)
        }
        EndpointCmd::Disable { slug, remote } => {
            let v = set_status(&remote, &slug, "disabled").await?;
            (remote, v)
        }
        EndpointCmd::Resume {
            slug,
            release,
            remote,
        } => {
            let r = Remote::new(&remote)?;
            let path = format!("/api/endpoints/{}", remote::path_segment(&slug));
            if release {
                // One call: nothing arriving between the resume and the
                // release goes before the held events.
                let both = r
                    .send("POST", &format!("{path}/resume?release=true"), None)
                    .await?;
                if remote.json {
                    say!("{both}");
                } else {
                    print_endpoint(&both["endpoint"]);
                    say!("{}", release_line(&both["release"]));
                }
                return Ok(release_exit(&both["release"]));
            }
            let v = set_status(&remote, &slug, "active").await?;
            let held = v["counts"]["held"].as_i64().unwrap_or(0);
            if held > 0 && !remote.json {
                // The design's "resume offers to release": said, not asked,
                // so scripts never wait on a prompt.
                let (n, are) = match held {
                    1 => ("1 event".to_string(), "is"),
                    n => (format!("{n} events"), "are"),
                };
                eprintln!(
                    "{n} {are} still held: `hookrelay endpoint release {slug}` sends them in arrival order"
                );
            }
            (remote, v)
        }
        EndpointCmd::Release { slug, remote } => {
            let r = Remote::new(&remote)?;
            let path = format!("/api/endpoints/{}/release", remote::path_segment(&slug));
            let v = r.send("POST", &path, None).await?;
            if remote.json {
                say!("{v}");
            } else {
                say!("{}", release_line(&v));
            }
            return Ok(release_exit(&v));
        }
        EndpointCmd::Ping { slug, remote } => {
            let r = Remote::new(&remote)?;
            let path = format!("/api/endpoints/{}/ping", remote::path_segment(&slug));
            let v = r.send("POST", &path, None).await?;
            if remote.json {
                say!("{v}");
            } else {
                let a = &v["attempt"];
                say!(
                    "ping to {}: {}",
                    a["url"].as_str().unwrap_or(""),
                    outcome(a)
                );
            }
            return Ok(if v["attempt"]["success"] == json!(true) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        EndpointCmd::Rm { slug, remote } => {
            let r = Remote::new(&remote)?;
            r.send(
                "DELETE",
                &format!("/api/endpoints/{}", remote::path_segment(&slug)),
                None,
            )
            .await?;
            if !remote.json {
                say!("deleted endpoint {slug}");
            } else {
                say!("{}", json!({ "deleted": slug }));
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    if remote.json {
        say!("{v}");
    } else {
        print_endpoint(&v);
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_status(remote: &RemoteArgs, slug: &str, status: &str) -> Result<Value, String> {
    let path = format!("/api/endpoints/{}", remote::path_segment(slug));
    Remote::new(remote)?
        .send("PATCH", &path, Some(json!({ "status": status })))
        .await
}

/// The JSON of the endpoint settings given as flags (only those given).
impl EndpointFlags {
    /// Whether any flag of a bin's answer was given.
    fn response_given(&self) -> bool {
        self.response_status.is_some()
            || self.response_body.is_some()
            || self.response_sequence.is_some()
            || !self.response_header.is_empty()
            || self.response_delay_ms.is_some()
    }

    /// Whether any flag of the signature setting was given.
    fn signature_given(&self) -> bool {
        self.signature_scheme.is_some()
            || !self.signature_secret.is_empty()
            || !self.signature_secret_file.is_empty()
            || self.enforce.is_some()
            || self.signature_tolerance.is_some()
            || self.signature_header.is_some()
            || self.signature_encoding.is_some()
            || self.signature_prefix.is_some()
            || self.signature_timestamp_header.is_some()
            || self.legacy_sha1.is_some()
    }
}

/// `checks_signatures`: editing, whether the endpoint checks signatures
/// already (the flags then change its check; otherwise they start one).
fn endpoint_fields(
    f: EndpointFlags,
    checks_signatures: bool,
) -> Result<serde_json::Map<String, Value>, String> {
    let signature_given = f.signature_given();
    let response_given = f.response_given();
    let mut body = serde_json::Map::new();
    let obj = &mut body;
    if let Some(t) = f.target {
        obj.insert("target".into(), t.into());
    }
    if let Some(n) = f.name {
        obj.insert("name".into(), n.into());
    }
    if let Some(t) = f.timeout_ms {
        obj.insert("timeout_ms".into(), t.into());
    }
    if let Some(t) = f.failure_threshold {
        obj.insert("failure_threshold".into(), t.into());
    }
    if let Some(c) = f.success_codes {
        obj.insert("success_codes".into(), c.into());
    }
    if let Some(n) = f.notify_url {
        obj.insert("notify_url".into(), n.into());
    }
    if let Some(m) = f.mode {
        obj.insert("mode".into(), m.into());
    }
    if let Some(r) = f.retry {
        obj.insert("retry".into(), r.into());
    }
    if let Some(o) = f.ordered {
        obj.insert("ordered".into(), o.into());
    }
    if let Some(n) = f.max_in_flight {
        obj.insert("max_in_flight".into(), n.into());
    }
    if let Some(n) = f.max_queue_depth {
        obj.insert("max_queue_depth".into(), n.into());
    }
    if let Some(m) = f.mirror {
        obj.insert("mirror".into(), m.into());
    }
    if signature_given {
        // Only what is given: the server keeps the rest of the endpoint's
        // check (secrets included), as far as it fits the scheme.
        let mut sig = json!({});
        match f.signature_scheme {
            Some(scheme) => sig["scheme"] = scheme.into(),
            None if checks_signatures => {}
            None => {
                return Err(
                    "the signature flags need --signature-scheme: this endpoint checks no signature yet"
                        .into(),
                );
            }
        }
        let secrets = secrets(f.signature_secret, &f.signature_secret_file)?;
        if !secrets.is_empty() {
            sig["secrets"] = secrets.into();
        }
        if let Some(e) = f.enforce {
            sig["enforce"] = e.into();
        }
        for (field, value) in [
            ("header", f.signature_header),
            ("encoding", f.signature_encoding),
            ("prefix", f.signature_prefix),
            ("timestamp_header", f.signature_timestamp_header),
        ] {
            // '' is "back to the default", as `null` is to the API.
            match value.as_deref() {
                Some("") => sig[field] = Value::Null,
                Some(v) => sig[field] = v.into(),
                None => {}
            }
        }
        if let Some(t) = f.signature_tolerance {
            sig["tolerance_s"] = t.into();
        }
        if let Some(l) = f.legacy_sha1 {
            sig["legacy_sha1"] = l.into();
        }
        obj.insert("signature".into(), sig);
    }
    if let Some(p) = f.ping_on_activate {
        obj.insert("ping_on_activate".into(), p.into());
    }
    if response_given {
        let mut resp = serde_json::Map::new();
        if let Some(s) = f.response_status {
            resp.insert("status".into(), s.into());
        }
        if let Some(b) = f.response_body {
            resp.insert("body".into(), b.into());
        }
        if let Some(seq) = f.response_sequence {
            resp.insert("sequence".into(), seq.into());
        }
        if f.response_header == [""] {
            resp.insert("headers".into(), json!([]));
        } else if !f.response_header.is_empty() {
            let headers = f
                .response_header
                .iter()
                .map(|h| match crate::endpoint::parse_header_line(h) {
                    Some((n, v)) => Ok(json!([n, v])),
                    None => Err(format!(
                        "--response-header: {h:?} needs the form \"Name: value\""
                    )),
                })
                .collect::<Result<Vec<_>, String>>()?;
            resp.insert("headers".into(), headers.into());
        }
        if let Some(d) = f.response_delay_ms {
            resp.insert("delay_ms".into(), d.into());
        }
        obj.insert("response".into(), resp.into());
    }
    Ok(body)
}

/// Characters of a bin's answer body `endpoint show` prints.
const BODY_SHOWN: usize = 80;

/// `endpoint show`: every setting of the endpoint (`--json` has them as
/// the API does).
fn print_endpoint(e: &Value) {
    let text = |v: &Value| printable(v.as_str().unwrap_or("")).into_owned();
    let list = |v: &Value| {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(", ")
    };
    say!("{}  ({})", text(&e["slug"]), text(&e["name"]));
    say!(
        "  status:    {}{}",
        text(&e["status"]),
        match e["disabled_at"].as_str() {
            Some(at) => format!(" since {}", printable(at)),
            None => String::new(),
        }
    );
    if e["disabled_reason"].is_string() {
        say!("  reason:    {}", text(&e["disabled_reason"]));
    }
    say!("  created:   {}", text(&e["created_at"]));
    let ingest = e.get("ingest_url").unwrap_or(&e["ingest_path"]);
    say!("  ingest:    {}", text(ingest));
    if e["target"].is_string() {
        say!(
            "  target:    {} ({} mode)",
            text(&e["target"]),
            text(&e["mode"])
        );
        say!(
            "  policy:    disabled past {} failures in a row; success {}; timeout {} ms",
            e["failure_threshold"],
            list(&e["success_codes"]),
            e["timeout_ms"]
        );
        if e["mode"] == "queue" {
            say!(
                "  queue:     retry {}; {}; {} pending at most",
                list(&e["retry"]),
                if e["ordered"] == json!(true) {
                    // `max_in_flight` does not apply (README: queue mode).
                    "ordered, one delivery in flight".to_string()
                } else {
                    format!("{} in flight at most", e["max_in_flight"])
                },
                e["max_queue_depth"]
            );
        }
    } else {
        let r = &e["response"];
        let sequence = list(&r["sequence"]);
        say!(
            "  target:    (bin) answers {}{}",
            if sequence.is_empty() {
                r["status"].to_string()
            } else {
                format!("{sequence} in turn (instead of {})", r["status"])
            },
            match r["delay_ms"].as_u64() {
                Some(ms) if ms > 0 => format!(", after {ms} ms"),
                _ => String::new(),
            }
        );
        for h in r["headers"].as_array().into_iter().flatten() {
            say!("  header:    {}: {}", text(&h[0]), text(&h[1]));
        }
        let body = r["body"].as_str().unwrap_or("");
        let shown: String = body.chars().take(BODY_SHOWN).collect();
        say!(
            "  body:      {:?}{}",
            printable(&shown),
            if shown.len() < body.len() {
                format!(" … ({} bytes)", body.len())
            } else {
                String::new()
            }
        );
    }
    if e["mirror"].is_string() {
        say!("  mirror:    {}", text(&e["mirror"]));
    }
    let sig = &e["signature"];
    if sig.is_object() {
        let scheme = sig["scheme"].as_str().unwrap_or("");
        let mut parts = vec![
            text(&sig["scheme"]),
            if sig["enforce"] == json!(true) {
                "enforced (invalid ones get 401)"
            } else {
                "checked, not enforced"
            }
            .to_string(),
            format!("{} secret(s)", sig["secret_count"]),
        ];
        if crate::signature::has_timestamp(scheme, sig["timestamp_header"].is_string()) {
            parts.push(format!("tolerance {} s", sig["tolerance_s"]));
        }
        if sig["legacy_sha1"] == json!(true) {
            parts.push("X-Hub-Signature (SHA-1) accepted".into());
        }
        for (key, what) in [
            ("header", "header"),
            ("encoding", "encoding"),
            ("prefix", "prefix"),
            ("timestamp_header", "timestamp header"),
        ] {
            if sig[key].is_string() {
                parts.push(format!(
                    "{what} {:?}",
                    printable(sig[key].as_str().unwrap_or(""))
                ));
            }
        }
        say!("  signature: {}", parts.join(", "));
    }
    if e["ping_on_activate"] == json!(true) {
        say!("  ping:      a signed test ping on create and on resume");
    }
    if e["notify_url"].is_string() {
        say!("  notify:    {}", text(&e["notify_url"]));
    }
    say!(
        "  failures:  {} in a row ({} left before disable)",
        e["consecutive_failures"],
        e["failures_left"]
    );
    say!(
        "  counts:    {} received, {} delivered, {} failed, {} held",
        e["counts"]["received"],
        e["counts"]["delivered"],
        e["counts"]["failed"],
        e["counts"]["held"]
    );
}

fn outcome(a: &Value) -> String {
    match (a["status"].as_u64(), a["error"].as_str()) {
        (Some(s), _) => format!(
            "HTTP {s} in {} ms{}",
            a["latency_ms"],
            if a["success"] == json!(true) {
                ""
            } else {
                " (failure)"
            }
        ),
        (None, Some(e)) => format!("{e} error: {}", a["error_detail"].as_str().unwrap_or("")),
        _ => "no answer".into(),
    }
}

/// Secrets given inline and in files (one per file, one trailing newline
/// ignored): files keep them off the command line, which other local users
/// can read in `/proc`.
pub(crate) fn secrets(
    mut inline: Vec<String>,
    files: &[std::path::PathBuf],
) -> Result<Vec<String>, String> {
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read the secret file {}: {e}", f.display()))?;
        let secret = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        if secret.is_empty() {
            return Err(format!("the secret file {} is empty", f.display()));
        }
        inline.push(secret.to_string());
    }
    Ok(inline)
}

/// The server names the API field an error is about (`timeout_ms: must
/// be …`); `endpoint add` users typed a flag, so it is named beside it.
fn with_flag_names(err: &str) -> String {
    let Some((field, rest)) = err.split_once(": ") else {
        return err.to_string();
    };
    let flag = match field {
        f if f.starts_with("signature.secret") => "--signature-secret",
        "signature.header" => "--signature-header",
        "signature.encoding" => "--signature-encoding",
        "signature.prefix" => "--signature-prefix",
        "signature.timestamp_header" => "--signature-timestamp-header",
        "signature.tolerance_s" => "--signature-tolerance",
        "signature.enforce" => "--enforce",
        "signature.legacy_sha1" => "--legacy-sha1",
        f if f.starts_with("signature") => "--signature-scheme",
        "response.status" => "--response-status",
        "response.body" => "--response-body",
        f if f.starts_with("response.headers") => "--response-header",
        "response.delay_ms" => "--response-delay-ms",
        f if f.starts_with("response.sequence") => "--response-sequence",
        "response" => "--response-status/-body/-sequence",
        f if f.starts_with("retry") => "--retry",
        f if f.starts_with("success_codes") => "--success-codes",
        "target" | "name" | "mode" | "mirror" | "timeout_ms" | "failure_threshold"
        | "notify_url" | "max_in_flight" | "max_queue_depth" => {
            return format!("{field} (--{}): {rest}", field.replace('_', "-"));
        }
        _ => return err.to_string(),
    };
    format!("{field} ({flag}): {rest}")
}

/// An export's text from `cursor` on: one answer, or with `all` every
/// answer the server's cap splits it into (newest first), put together
/// oldest first as each answer is (a HAR's entries in one document).
/// Without `all`, a cut answer says how to go on.
async fn export_pages(
    r: &Remote,
    q: Vec<(&str, String)>,
    mut cursor: Option<String>,
    all: bool,
    har: bool,
) -> Result<String, String> {
    let mut parts = Vec::new();
    loop {
        let mut page = q.clone();
        page.extend(cursor.clone().map(|c| ("cursor", c)));
        let (part, next) = r
            .get_export(&format!("/api/export?{}", remote::query_string(&page)))
            .await?;
        parts.push(part);
        match next.filter(|c| !c.is_empty()) {
            Some(c) if all => cursor = Some(c),
            Some(c) => {
                eprintln!(
                    "warning: the export was cut at the server's cap and holds the newest events; the older ones follow with --cursor {c} (or --all)"
                );
                break;
            }
            None => break,
        }
    }
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    parts.reverse();
    if !har {
        return Ok(parts.concat());
    }
    let mut docs = parts.iter().map(|p| {
        serde_json::from_str::<Value>(p)
            .map_err(|e| format!("the server's HAR could not be read: {e}"))
    });
    let mut doc = docs.next().expect("two parts or more")?;
    for more in docs {
        let more = more?["log"]["entries"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(entries) = doc["log"]["entries"].as_array_mut() {
            entries.extend(more);
        }
    }
    Ok(doc.to_string())
}

/// When a filter by endpoint matched nothing, says on stderr if no such
/// endpoint exists: a mistyped slug would otherwise look like an endpoint
/// without events. Not an error, as a deleted endpoint's events stay
/// listable by its slug.
pub(crate) async fn note_unknown_endpoint(r: &Remote, slug: Option<&str>) {
    let Some(slug) = slug else { return };
    let Ok(v) = r.get("/api/endpoints").await else {
        return;
    };
    let known = v["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["slug"] == slug);
    if !known {
        eprintln!(
            "note: there is no endpoint {} (see `hookrelay endpoint list`)",
            printable(&format!("{slug:?}"))
        );
    }
}

fn print_events(v: &Value) {
    say!(
        "{:<26} {:<16} {:<24} {:<7} {:<10} {:>6}  PATH",
        "ID",
        "ENDPOINT",
        "RECEIVED",
        "METHOD",
        "STATE",
        "STATUS"
    );
    for e in v["events"].as_array().into_iter().flatten() {
        say!(
            "{:<26} {:<16} {:<24} {:<7} {:<10} {:>6}  {}",
            e["id"].as_str().unwrap_or(""),
            e["endpoint"].as_str().unwrap_or(""),
            e["received_at"].as_str().unwrap_or(""),
            e["method"].as_str().unwrap_or(""),
            e["state"].as_str().unwrap_or(""),
            e["last_status"]
                .as_u64()
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            path_and_query(e),
        );
    }
    if let Some(c) = v["next_cursor"].as_str() {
        if v["scan_capped"] == json!(true) {
            // An empty or short page is not the end: the server stopped
            // reading at its per-request budget.
            say!(
                "more: --cursor {c} (the search read {} events and stopped at its budget; the next page reads on)",
                v["scanned"]
            );
        } else {
            say!("more: --cursor {c}");
        }
    }
}

/// An event's path suffix and query (`/orders?x=1`), as the API gives them.
pub(crate) fn path_and_query(e: &Value) -> String {
    let path = e["path"].as_str().unwrap_or("");
    match e["query"].as_str() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    }
}

fn print_event(e: &Value) {
    say!(
        "event {}  [{}]",
        e["id"].as_str().unwrap_or(""),
        e["state"].as_str().unwrap_or("")
    );
    say!(
        "{} /in/{}{}  from {} at {}",
        e["method"].as_str().unwrap_or(""),
        e["endpoint"].as_str().unwrap_or(""),
        path_and_query(e),
        e["remote_addr"].as_str().unwrap_or(""),
        e["received_at"].as_str().unwrap_or(""),
    );
    let sig = &e["signature"];
    if let Some(verdict) = sig["verdict"].as_str() {
        say!(
            "signature: {verdict}{}{}",
            sig["scheme"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default(),
            sig["detail"]
                .as_str()
                .filter(|d| !d.is_empty())
                .map(|d| format!(" — {d}"))
                .unwrap_or_default()
        );
    }
    for (label, key) in [
        ("next try", "next_try_at"),
        ("topic", "topic"),
        ("provider id", "external_id"),
        ("duplicate of", "duplicate_of"),
    ] {
        if let Some(v) = e[key].as_str() {
            say!("{label}: {v}");
        }
    }
    for h in e["headers"].as_array().into_iter().flatten() {
        say!(
            "  {}: {}",
            h[0].as_str().unwrap_or(""),
            h[1].as_str().unwrap_or("")
        );
    }
    match (e["body"].as_str(), e["body_base64"].as_str()) {
        (Some(b), _) => say!("\n{b}\n"),
        (None, Some(_)) => say!(
            "\n({} bytes of binary body; --json shows it as base64)\n",
            e["size"]
        ),
        _ => {}
    }
    if let Some(n) = e["attempts_omitted"].as_u64() {
        say!(
            "  ({n} older attempt(s) not shown: GET /api/events/{}/attempts)",
            e["id"].as_str().unwrap_or("")
        );
    }
    for a in e["attempts"].as_array().into_iter().flatten() {
        say!(
            "  attempt {} [{}] {} -> {}",
            a["n"],
            a["trigger"].as_str().unwrap_or(""),
            a["url"].as_str().unwrap_or(""),
            outcome(a)
        );
    }
}

/// Stored events are hostile input: their control characters (ESC, CSI,
/// CR, the C1 range) and bidi overrides would drive the terminal — clear
/// it, plant links, rewrite lines — so every line the CLI prints shows
/// them escaped as `\u001b`. That form is also a valid JSON escape, so
/// `--json` output goes through here too (serde_json leaves C1 and bidi
/// characters raw); newlines and tabs stay.
pub fn printable(s: &str) -> Cow<'_, str> {
    crate::text::replace_chars(
        s,
        |c| (c.is_control() && c != '\n' && c != '\t') || crate::text::is_bidi_control(c),
        |c| format!("\\u{:04x}", c as u32),
    )
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What a release did, from the API's report, in one line.
fn release_line(r: &Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let events = |n: u64| if n == 1 { "event" } else { "events" };
    let mut line = if n("queued") > 0 {
        format!(
            "released {} held {} back into the queue (delivered in the background)",
            n("released"),
            events(n("released"))
        )
    } else {
        format!(
            "released {} held {}: {} delivered, {} failed",
            n("released"),
            events(n("released")),
            n("delivered"),
            n("failed")
        )
    };
    if n("still_held") > 0 {
        line.push_str(&format!(
            "; {} still held (the endpoint is no longer active)",
            n("still_held")
        ));
    }
    line
}

/// A release with failed deliveries or events left held is not a success,
/// as a failed replay or ping is not.
fn release_exit(r: &Value) -> ExitCode {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    match n("failed") + n("still_held") {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moved(args: &[&str]) -> Vec<String> {
        client_flags_last(args.iter().map(Into::into).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn client_flags_before_the_command_go_after_it() {
        assert_eq!(
            moved(&[
                "hookrelay",
                "--server",
                "http://h:1",
                "--json",
                "events",
                "--limit",
                "5"
            ]),
            [
                "hookrelay",
                "events",
                "--limit",
                "5",
                "--server",
                "http://h:1",
                "--json"
            ]
        );
        assert_eq!(
            moved(&["hookrelay", "--token=t0k", "endpoint", "list"]),
            ["hookrelay", "endpoint", "list", "--token=t0k"]
        );
        // After the command, and anything that is not a client flag, stays.
        for args in [
            &["hookrelay", "events", "--server", "http://h:1"][..],
            &["hookrelay", "--help"],
            &["hookrelay", "--serverx", "events"],
            &["hookrelay"],
        ] {
            assert_eq!(moved(args), args);
        }
        // Parsed as written after the command; `serve` takes none.
        let cli =
            Cli::try_parse_from(moved(&["hookrelay", "--server", "http://h:1", "events"])).unwrap();
        let Command::Events(e) = cli.command else {
            panic!("events")
        };
        assert_eq!(e.remote.server, "http://h:1");
        assert!(Cli::try_parse_from(moved(&["hookrelay", "--json", "serve"])).is_err());
    }
}
