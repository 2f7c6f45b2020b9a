//! SSHSIG (OpenSSH's `ssh-keygen -Y sign` format) over `MANIFEST.sha256`.
//! Anyone checks it with `ssh-keygen -Y verify -n vmbench-report …`, and
//! `vmbench report verify` is no weaker: it reads `allowed_signers` as
//! OpenSSH's `sshsig.c` does (options `namespaces`, `valid-after`,
//! `valid-before`, `cert-authority`; a line with a malformed or unknown
//! option is skipped, as there), checks the key's validity at the time of
//! verification, and a test compares its verdict with `ssh-keygen`'s on the
//! same inputs.

use crate::PublishError;
use crate::manifest::{self, SIGNATURE};
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::Path;
use std::process::{Command, Stdio};
use vmbench_host::files::{self, OutputDir};

/// The project's signature namespace: a signature made for anything else
/// (git commits, files) never verifies as a report, and vice versa.
pub const NAMESPACE: &str = "vmbench-report";

/// The largest key, signature or allowed_signers file read.
const MAX_SMALL_FILE: u64 = 1 << 20;

/// What a signing key is: a private key used directly, or a public key
/// whose private half is in ssh-agent.
#[derive(Debug)]
pub enum SigningKey {
    /// An unencrypted OpenSSH ed25519 private key.
    File(Box<PrivateKey>),
    /// A `.pub` whose private half ssh-agent holds (ssh-keygen signs).
    Agent(PublicKey),
}

impl SigningKey {
    /// Reads and checks `key` without signing anything: an ed25519 key,
    /// unencrypted if private (`vmbench run` checks this in its preflight,
    /// so a bad key fails before the run, not after it).
    pub fn load(key: &Path) -> Result<SigningKey, PublishError> {
        let text = files::read_regular_text(key, MAX_SMALL_FILE)?;
        let ed25519_only = |alg: Algorithm| {
            if alg == Algorithm::Ed25519 {
                Ok(())
            } else {
                Err(PublishError::Key(format!(
                    "{} is a {alg} key; vmbench signs with ed25519 keys only (make one with `ssh-keygen -t ed25519`)",
                    key.display()
                )))
            }
        };
        if key.extension().is_some_and(|e| e == "pub") {
            let pk = PublicKey::from_openssh(text.trim())
                .map_err(|e| PublishError::Key(format!("{}: {e}", key.display())))?;
            ed25519_only(pk.algorithm())?;
            return Ok(SigningKey::Agent(pk));
        }
        let private = PrivateKey::from_openssh(&text)
            .map_err(|e| PublishError::Key(format!("{}: {e}", key.display())))?;
        ed25519_only(private.algorithm())?;
        if private.is_encrypted() {
            return Err(PublishError::Key(format!(
                "{} is passphrase-protected: add it to ssh-agent (`ssh-add {}`) and pass the public key ({}.pub) instead",
                key.display(),
                key.display(),
                key.display()
            )));
        }
        Ok(SigningKey::File(Box::new(private)))
    }

    /// Checks that the key can sign now: a key file loaded above can; for
    /// a `.pub`, ssh-agent must hold its private half, so this signs a
    /// throwaway message through the agent (a run checks it before it
    /// starts, not after its minutes of measurement).
    pub fn probe(&self) -> Result<(), PublishError> {
        match self {
            SigningKey::File(_) => Ok(()),
            SigningKey::Agent(public) => {
                agent_signature(public, b"vmbench: can this key sign?", None).map(|_| ())
            }
        }
    }

    /// The key's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        match self {
            SigningKey::File(k) => k.public_key().fingerprint(HashAlg::Sha256),
            SigningKey::Agent(k) => k.fingerprint(HashAlg::Sha256),
        }
        .to_string()
    }
}

/// Signs the directory's manifest with an unencrypted private key file, or
/// through ssh-agent when `key` is a `.pub` file (its private half in the
/// agent; `ssh-keygen` does the signing then). Writes `report.sig`.
pub fn sign(dir: &Path, key: &Path) -> Result<String, PublishError> {
    let manifest = manifest::read(&OutputDir::open(dir)?)?;
    sign_manifest(dir, key, &manifest)
}

/// Signs `manifest`, the bytes the caller built (a run signs the manifest
/// it wrote, not what is on disk by then), and writes `report.sig` in `dir`.
pub fn sign_manifest(dir: &Path, key: &Path, manifest: &[u8]) -> Result<String, PublishError> {
    let key = SigningKey::load(key)?;
    let out = OutputDir::open(dir)?;
    let pem = match &key {
        SigningKey::File(private) => {
            let sig = private
                .sign(NAMESPACE, HashAlg::Sha512, manifest)
                .map_err(|e| PublishError::Key(format!("signing: {e}")))?;
            sig.to_pem(LineEnding::LF)
                .map_err(|e| PublishError::Key(format!("encoding the signature: {e}")))?
        }
        SigningKey::Agent(public) => agent_signature(public, manifest, None)?,
    };
    out.write(SIGNATURE, pem.as_bytes())?;
    Ok(key.fingerprint())
}

/// The `ssh-keygen` to run: `$VMBENCH_SSH_KEYGEN` (set by `nix run .#bench`
/// to the flake's OpenSSH), else the one in PATH.
fn ssh_keygen() -> std::ffi::OsString {
    std::env::var_os("VMBENCH_SSH_KEYGEN")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "ssh-keygen".into())
}

/// Signs `data` through ssh-agent with `ssh-keygen -Y sign`, the data on
/// its stdin and the signature from its stdout (no file of the report
/// directory is handed to it by name).
fn agent_signature(
    public: &PublicKey,
    data: &[u8],
    agent: Option<&Path>,
) -> Result<String, PublishError> {
    use std::io::Write;
    let pub_file = tempfile::NamedTempFile::new()
        .map_err(|e| PublishError::Key(format!("a temporary file for the public key: {e}")))?;
    let text = public
        .to_openssh()
        .map_err(|e| PublishError::Key(e.to_string()))?;
    pub_file
        .as_file()
        .write_all((text + "\n").as_bytes())
        .map_err(|e| PublishError::io(pub_file.path(), e))?;
    let keygen = ssh_keygen();
    let mut cmd = Command::new(&keygen);
    cmd.args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(pub_file.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(sock) = agent {
        cmd.env("SSH_AUTH_SOCK", sock);
    }
    let mut child = cmd.spawn().map_err(|e| {
        PublishError::Key(format!(
            "running {} (package openssh-client; or set VMBENCH_SSH_KEYGEN): {e}",
            keygen.to_string_lossy()
        ))
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(data)
            .map_err(|e| PublishError::Key(format!("feeding ssh-keygen: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| PublishError::Key(format!("ssh-keygen: {e}")))?;
    if !out.status.success() {
        return Err(PublishError::Key(format!(
            "ssh-keygen -Y sign through ssh-agent failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout)
        .map_err(|_| PublishError::Key("ssh-keygen wrote non-UTF-8".into()))
}

/// Signs through ssh-agent: `public`'s private half must be loaded there.
/// `agent` overrides `SSH_AUTH_SOCK` (else the environment's agent is used).
pub fn sign_with_agent(
    dir: &Path,
    public: &Path,
    agent: Option<&Path>,
) -> Result<String, PublishError> {
    let SigningKey::Agent(pk) = SigningKey::load(public)? else {
        return Err(PublishError::Key(format!(
            "{}: give the public key (.pub) of a key in ssh-agent",
            public.display()
        )));
    };
    let out = OutputDir::open(dir)?;
    let manifest = manifest::read(&out)?;
    let pem = agent_signature(&pk, &manifest, agent)?;
    out.write(SIGNATURE, pem.as_bytes())?;
    Ok(pk.fingerprint(HashAlg::Sha256).to_string())
}

/// One `allowed_signers` line that matched the signature's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The line's principals (comma-separated).
    pub principals: String,
    /// The key's SHA-256 fingerprint.
    pub fingerprint: String,
}

impl Signer {
    /// Whether the line's principals (patterns, as OpenSSH reads them)
    /// name `principal`: what `ssh-keygen -Y verify -I principal` checks.
    pub fn vouches_for(&self, principal: &str) -> bool {
        match_pattern_list(principal, &self.principals)
    }
}

/// The outcome of `vmbench report verify`.
#[derive(Debug)]
pub struct Verified {
    /// Whose key signed the manifest.
    pub signer: Signer,
    /// What the files' check against the manifest found.
    pub files: manifest::ManifestCheck,
}

/// Checks `report.sig` over the manifest (key listed in `allowed_signers`,
/// valid now, for this namespace; namespace; signature), then every file's
/// hash.
pub fn verify(dir: &Path, allowed_signers: &Path) -> Result<Verified, PublishError> {
    verify_at(dir, allowed_signers, now_unix())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// [`verify`] as of `now` (seconds since the Unix epoch).
pub fn verify_at(dir: &Path, allowed_signers: &Path, now: i64) -> Result<Verified, PublishError> {
    let out = OutputDir::open(dir)?;
    let manifest = manifest::read(&out)?;
    let sig_bytes = out.read(SIGNATURE, MAX_SMALL_FILE)?;
    let sig = SshSig::from_pem(&sig_bytes).map_err(|e| {
        PublishError::BadSignature(format!("report.sig is not an SSH signature: {e}"))
    })?;
    let allowed =
        files::read_regular_text(allowed_signers, MAX_SMALL_FILE).map_err(PublishError::Input)?;
    let signer = allowed_signer_for(&allowed, &sig, now)?;
    let key = PublicKey::from(sig.public_key().clone());
    key.verify(NAMESPACE, &manifest, &sig).map_err(|e| {
        PublishError::BadSignature(format!(
            "signature does not verify over MANIFEST.sha256 in namespace {NAMESPACE:?}: {e}"
        ))
    })?;
    let files = manifest::check(&out, &manifest)?;
    if !files.passed() {
        return Err(PublishError::Tampered(format!(
            "changed: {:?}; missing: {:?}; not in the manifest: {:?}",
            files.changed, files.missing, files.unlisted
        )));
    }
    Ok(Verified { signer, files })
}

/// The options of an allowed_signers line, as `sshsig.c` reads them.
#[derive(Debug, Default, PartialEq, Eq)]
struct LineOptions {
    cert_authority: bool,
    namespaces: Option<String>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
}

/// Splits `principals [options] key` (leading blanks skipped); None for a
/// blank or comment line. The options field ends at the first blank that
/// is not inside quotes.
fn split_line(line: &str) -> Option<(&str, &str, &str)> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (principals, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
    let rest = rest.trim_start_matches([' ', '\t']);
    // A key right away (`ssh-ed25519 AAAA…`) or options first.
    if PublicKey::from_openssh(rest.trim_end()).is_ok() {
        return Some((principals, "", rest));
    }
    let mut in_quotes = false;
    let mut end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ' ' | '\t' if !in_quotes => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let (opts, key) = rest.split_at(end);
    Some((principals, opts, key.trim_start_matches([' ', '\t'])))
}

/// What is wrong with an allowed_signers line's options (ssh-keygen's words).
#[derive(Debug, thiserror::Error, PartialEq)]
enum OptionsError {
    #[error("missing start quote")]
    MissingStartQuote,
    #[error("missing end quote")]
    MissingEndQuote,
    #[error("multiple \"{0}\" clauses")]
    Repeated(&'static str),
    #[error("invalid \"{0}\" time")]
    BadTime(&'static str),
    #[error("unknown key option at {0:?}")]
    Unknown(String),
    #[error("unexpected end-of-options")]
    UnexpectedEnd,
    #[error("\"valid-before\" time is before \"valid-after\"")]
    EndsBeforeStart,
}

/// A quoted option value (`"…"`, `\"` inside) at the start of `s`; returns
/// it and what follows the closing quote.
fn dequote(s: &str) -> Result<(String, &str), OptionsError> {
    let body = s.strip_prefix('"').ok_or(OptionsError::MissingStartQuote)?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return Err(OptionsError::MissingEndQuote),
            },
            c => out.push(c),
        }
    }
    Err(OptionsError::MissingEndQuote)
}

/// Strips `name=` (any case) from the front of `s`.
fn strip_option<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let head = s.get(..name.len())?;
    if head.eq_ignore_ascii_case(name) {
        s[name.len()..].strip_prefix('=')
    } else {
        None
    }
}

fn parse_options(opts: &str) -> Result<LineOptions, OptionsError> {
    let mut o = LineOptions::default();
    let mut rest = opts;
    while !rest.is_empty() {
        if rest
            .get(..14)
            .is_some_and(|h| h.eq_ignore_ascii_case("cert-authority"))
        {
            o.cert_authority = true;
            rest = &rest[14..];
        } else if let Some(v) = strip_option(rest, "namespaces") {
            if o.namespaces.is_some() {
                return Err(OptionsError::Repeated("namespaces"));
            }
            let (value, after) = dequote(v)?;
            o.namespaces = Some(value);
            rest = after;
        } else if let Some(v) = strip_option(rest, "valid-after") {
            if o.valid_after.is_some() {
                return Err(OptionsError::Repeated("valid-after"));
            }
            let (value, after) = dequote(v)?;
            o.valid_after = Some(parse_time(&value).ok_or(OptionsError::BadTime("valid-after"))?);
            rest = after;
        } else if let Some(v) = strip_option(rest, "valid-before") {
            if o.valid_before.is_some() {
                return Err(OptionsError::Repeated("valid-before"));
            }
            let (value, after) = dequote(v)?;
            o.valid_before = Some(parse_time(&value).ok_or(OptionsError::BadTime("valid-before"))?);
            rest = after;
        } else {
            return Err(OptionsError::Unknown(rest.to_string()));
        }
        if rest.is_empty() {
            break;
        }
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| OptionsError::Unknown(rest.to_string()))?;
        if rest.is_empty() {
            return Err(OptionsError::UnexpectedEnd);
        }
    }
    if let (Some(after), Some(before)) = (o.valid_after, o.valid_before)
        && before <= after
    {
        return Err(OptionsError::EndsBeforeStart);
    }
    Ok(o)
}

/// `YYYYMMDD[HHMM[SS]]`, local time unless it ends in `Z` or `UTC`
/// (OpenSSH's `parse_absolute_time`); None when malformed or before 1970.
fn parse_time(s: &str) -> Option<i64> {
    let (digits, utc) = if let Some(d) = s.strip_suffix(['Z', 'z']).filter(|_| s.len() > 1) {
        (d, true)
    } else if s.len() > 3 && s[s.len() - 3..].eq_ignore_ascii_case("UTC") {
        (&s[..s.len() - 3], true)
    } else {
        (s, false)
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |a: usize, b: usize| digits.get(a..b).and_then(|v| v.parse::<i64>().ok());
    let (year, month, day) = (field(0, 4)?, field(4, 6)?, field(6, 8)?);
    let hour = if digits.len() >= 12 { field(8, 10)? } else { 0 };
    let min = if digits.len() >= 12 {
        field(10, 12)?
    } else {
        0
    };
    let sec = if digits.len() == 14 {
        field(12, 14)?
    } else {
        0
    };
    // strptime's ranges.
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 61 {
        return None;
    }
    let t = if utc {
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec
    } else {
        local_time(year, month, day, hour, min, sec)?
    };
    (t > 0).then_some(t)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm; a day past the month's end rolls over, as mktime does).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// mktime(3) in the local time zone, as ssh-keygen reads a time without `Z`.
fn local_time(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> Option<i64> {
    let int = |v: i64| i32::try_from(v).ok();
    // SAFETY: an all-zero `tm` is a valid value of the plain C struct.
    let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = int(y - 1900)?;
    tm.tm_mon = int(mo - 1)?;
    tm.tm_mday = int(d)?;
    tm.tm_hour = int(h)?;
    tm.tm_min = int(mi)?;
    tm.tm_sec = int(s)?;
    tm.tm_isdst = -1;
    // SAFETY: mktime reads and normalises the struct we own; it reads the
    // time-zone database as ssh-keygen does.
    let t = unsafe { nix::libc::mktime(&mut tm) };
    (t >= 0).then_some(t)
}

/// OpenSSH's `match_pattern`: `*` and `?` wildcards. Iterative, with one
/// backtrack point (the last `*`): linear in practice and at worst
/// `O(len(s) × len(p))`, where a recursive matcher takes exponential time
/// on patterns such as `*a*a*a*…` against a long name (allowed_signers is
/// input).
fn match_pattern(s: &[u8], p: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    // After the last `*`: where the pattern resumes, and where in `s` the
    // star's match ends so far.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi + 1, si));
                pi += 1;
            }
            Some(b'?') => {
                si += 1;
                pi += 1;
            }
            Some(c) if *c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                // Let the last star take one more byte and try again.
                Some((after, taken)) => {
                    pi = after;
                    si = taken + 1;
                    star = Some((after, taken + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// OpenSSH's `match_pattern_list`: comma-separated patterns, `!` negates;
/// a matching negated pattern denies whatever else matches.
fn match_pattern_list(s: &str, list: &str) -> bool {
    let mut positive = false;
    for p in list.split(',') {
        let (negated, p) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p),
        };
        if match_pattern(s.as_bytes(), p.as_bytes()) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// Finds an allowed_signers line that admits the signature's key now, for
/// our namespace (every line is tried, as OpenSSH does: a line whose key
/// matches but whose options refuse it does not end the search). The
/// error says why each matching line refused.
fn allowed_signer_for(allowed: &str, sig: &SshSig, now: i64) -> Result<Signer, PublishError> {
    let want = PublicKey::from(sig.public_key().clone());
    let fingerprint = want.fingerprint(HashAlg::Sha256).to_string();
    let mut refusals = Vec::new();
    for (n, line) in allowed.lines().enumerate() {
        let Some((principals, opts, key_text)) = split_line(line) else {
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(key_text.trim_end()) else {
            continue;
        };
        if key.key_data() != want.key_data() {
            continue;
        }
        let refuse = |why: String| format!("line {}: {why}", n + 1);
        let o = match parse_options(opts) {
            Ok(o) => o,
            Err(why) => {
                refusals.push(refuse(format!("bad options ({why})")));
                continue;
            }
        };
        if o.cert_authority {
            refusals.push(refuse(
                "a cert-authority line admits certificates signed by that key, not the key itself"
                    .into(),
            ));
            continue;
        }
        if let Some(ns) = &o.namespaces
            && !match_pattern_list(NAMESPACE, ns)
        {
            refusals.push(refuse(format!(
                "the key is allowed only for namespaces {ns:?}, not {NAMESPACE:?}"
            )));
            continue;
        }
        if let Some(after) = o.valid_after
            && now < after
        {
            refusals.push(refuse(format!(
                "the key is not valid yet (valid-after {after})"
            )));
            continue;
        }
        if let Some(before) = o.valid_before
            && now > before
        {
            refusals.push(refuse(format!(
                "the key has expired (valid-before {before})"
            )));
            continue;
        }
        return Ok(Signer {
            principals: principals.to_string(),
            fingerprint,
        });
    }
    Err(PublishError::BadSignature(if refusals.is_empty() {
        format!("the signing key {fingerprint} is not in the allowed signers file")
    } else {
        format!(
            "no allowed signers line admits the signing key {fingerprint} now: {}",
            refusals.join("; ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_openssh_reads_them() {
        assert_eq!(parse_time("19700102Z"), Some(86_400));
        assert_eq!(parse_time("19700102UTC"), Some(86_400));
        assert_eq!(parse_time("197001020001Z"), Some(86_460));
        assert_eq!(parse_time("19700102000001z"), Some(86_401));
        assert_eq!(parse_time("20000301Z"), Some(951_868_800));
        for bad in ["2099123", "20991332Z", "2099123a", "", "Z", "19700101Z"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn options_parse_as_sshsig_c_reads_them() {
        assert_eq!(
            parse_options(r#"namespaces="a,vmbench-*",valid-before="20991231Z""#),
            Ok(LineOptions {
                namespaces: Some("a,vmbench-*".into()),
                valid_before: parse_time("20991231Z"),
                ..LineOptions::default()
            })
        );
        assert!(parse_options("CERT-AUTHORITY").unwrap().cert_authority);
        for bad in [
            "namespaces=vmbench-report",
            "foo",
            r#"namespaces="a",namespaces="b""#,
            r#"valid-after="20200101Z",valid-before="20100101Z""#,
            r#"namespaces="a","#,
        ] {
            assert!(parse_options(bad).is_err(), "{bad}");
        }
        assert!(match_pattern_list("vmbench-report", "x,vmbench-*"));
        assert!(!match_pattern_list("vmbench-report", "!vmbench-report,*"));
        assert!(!match_pattern_list("vmbench-report", "git"));
    }

    #[test]
    fn glob_patterns_match_as_openssh_does_and_in_linear_time() {
        for (s, p, want) in [
            ("vmbench-report", "vmbench-report", true),
            ("vmbench-report", "vmbench-*", true),
            ("vmbench-report", "*-report", true),
            ("vmbench-report", "*", true),
            ("vmbench-report", "v?bench-*t", true),
            ("vmbench-report", "*bench*rep*", true),
            ("vmbench-report", "vmbench-repor", false),
            ("vmbench-report", "vmbench-report?", false),
            ("vmbench-report", "*x*", false),
            ("", "*", true),
            ("", "?", false),
            ("aaa", "a*a*a", true),
            ("ab", "*a*b*", true),
            ("abc", "*a*c*b", false),
        ] {
            assert_eq!(match_pattern(s.as_bytes(), p.as_bytes()), want, "{s} ~ {p}");
        }
        // 25 stars against a long name that never matches: exponential for
        // a recursive matcher (over 60 s), instant here.
        let name = "a".repeat(200);
        let pattern = format!("{}b", "*a".repeat(25));
        let started = std::time::Instant::now();
        assert!(!match_pattern(name.as_bytes(), pattern.as_bytes()));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
