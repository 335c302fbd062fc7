//! `hookrelay verify`: checks a signature offline and prints the verdict as
//! JSON; the exit status is 0 only for `valid`.

use std::process::ExitCode;

use clap::Args;

use crate::signature::{self, SignatureConfig, Verdict};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// woocommerce, github, stripe, shopify, standard, slack, paddle, hmac-sha256 or auto.
    #[arg(long, default_value = "auto")]
    pub scheme: String,
    /// The signing secret; repeat for rotated secrets (any match is valid).
    /// On a shared machine prefer --secret-file: a command line is visible
    /// to other users.
    #[arg(long = "secret", required_unless_present = "secret_files")]
    pub secrets: Vec<String>,
    /// A file holding a signing secret (one trailing newline is ignored); repeat for rotated secrets.
    #[arg(long = "secret-file")]
    pub secret_files: Vec<std::path::PathBuf>,
    /// A request header as `Name: value`; repeat for each.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// The body bytes, exactly as received; `-` reads standard input.
    #[arg(long)]
    pub body_file: String,
    /// Judge timestamps as of this Unix time (default: now).
    #[arg(long)]
    pub at: Option<i64>,
    /// The URL the request was sent to (schemes that sign it).
    #[arg(long)]
    pub url: Option<String>,
    /// Timestamp tolerance in seconds (0 turns the check off).
    #[arg(long, default_value_t = signature::DEFAULT_TOLERANCE_S)]
    pub tolerance: u64,
    /// hmac-sha256: the signature header (default X-Signature).
    #[arg(long)]
    pub sig_header: Option<String>,
    /// hmac-sha256: hex or base64.
    #[arg(long)]
    pub encoding: Option<String>,
    /// hmac-sha256: text before the MAC, e.g. sha256=.
    #[arg(long)]
    pub prefix: Option<String>,
    /// hmac-sha256: header with a timestamp signed as `ts.body`.
    #[arg(long)]
    pub timestamp_header: Option<String>,
    /// github: also accept the legacy X-Hub-Signature (sha1).
    #[arg(long)]
    pub legacy_sha1: bool,
}

pub fn run(a: VerifyArgs) -> Result<ExitCode, String> {
    let mut cfg = SignatureConfig::new(&a.scheme, "");
    cfg.secret = None;
    cfg.secrets = super::secrets(a.secrets, &a.secret_files)?;
    cfg.tolerance_s = a.tolerance;
    cfg.header = a.sig_header;
    cfg.encoding = a.encoding;
    cfg.prefix = a.prefix;
    cfg.timestamp_header = a.timestamp_header;
    cfg.legacy_sha1 = a.legacy_sha1;
    cfg.validate().map_err(|e| flag_names(&e))?;
    let mut headers = Vec::new();
    for h in &a.headers {
        let (name, value) = crate::endpoint::parse_header_line(h)
            .ok_or_else(|| format!("--header {h:?}: expected 'Name: value'"))?;
        headers.push((name, value.into_bytes()));
    }
    let body = if a.body_file == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
            .map_err(|e| format!("stdin: {e}"))?;
        b
    } else {
        std::fs::read(&a.body_file).map_err(|e| format!("--body-file {}: {e}", a.body_file))?
    };
    let now =
        a.at.unwrap_or_else(|| (crate::time::now_ms() / 1000) as i64);
    let check = signature::verify(&cfg, &headers, &body, a.url.as_deref(), now);
    say!(
        "{}",
        serde_json::to_string_pretty(&check).map_err(|e| e.to_string())?
    );
    Ok(if check.verdict == Verdict::Valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A setting refused by [`SignatureConfig::validate`] named by this
/// command's flag rather than the API field the message starts with.
fn flag_names(err: &str) -> String {
    let Some((field, rest)) = err.split_once(": ") else {
        return err.to_string();
    };
    let flag = match field.strip_prefix("signature.").unwrap_or(field) {
        "scheme" => "--scheme",
        f if f.starts_with("secret") => "--secret/--secret-file",
        "header" => "--sig-header",
        "encoding" => "--encoding",
        "prefix" => "--prefix",
        "timestamp_header" => "--timestamp-header",
        "legacy_sha1" => "--legacy-sha1",
        "tolerance_s" => "--tolerance",
        _ => return err.to_string(),
    };
    format!("{flag}: {rest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_settings_name_this_commands_flags() {
        let mut cfg = SignatureConfig::new("github", "s");
        cfg.header = Some("X-Sig".into());
        let err = flag_names(&cfg.validate().unwrap_err());
        assert!(
            err.starts_with("--sig-header: only used by scheme `hmac-sha256`"),
            "{err}"
        );
        let err = flag_names(&SignatureConfig::new("nope", "s").validate().unwrap_err());
        assert!(err.starts_with("--scheme: unknown scheme"), "{err}");
        let mut cfg = SignatureConfig::new("hmac-sha256", "s");
        cfg.header = Some("X-Sig".into());
        cfg.encoding = Some("rot13".into());
        let err = flag_names(&cfg.validate().unwrap_err());
        assert!(err.starts_with("--encoding: "), "{err}");
    }
}
