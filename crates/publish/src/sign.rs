//! SSHSIG (OpenSSH's `ssh-keygen -Y sign` format) over `MANIFEST.sha256`.
//! Anyone checks it with `ssh-keygen -Y verify -n vmbench-report …`.

use crate::PublishError;
use crate::manifest::{self, MANIFEST, SIGNATURE};
use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::Path;
use std::process::Command;

/// The project's signature namespace: a signature made for anything else
/// (git commits, files) never verifies as a report, and vice versa.
pub const NAMESPACE: &str = "vmbench-report";

/// Signs the directory's manifest with an unencrypted private key file, or
/// through ssh-agent when `key` is a `.pub` file (its private half in the
/// agent; `ssh-keygen` does the signing then). Writes `report.sig`.
pub fn sign(dir: &Path, key: &Path) -> Result<String, PublishError> {
    let manifest =
        std::fs::read(dir.join(MANIFEST)).map_err(|e| PublishError::io(&dir.join(MANIFEST), e))?;
    let sig_path = dir.join(SIGNATURE);
    if key.extension().is_some_and(|e| e == "pub") {
        return sign_with_agent(dir, key, None);
    }
    let text = std::fs::read_to_string(key).map_err(|e| PublishError::io(key, e))?;
    let private = PrivateKey::from_openssh(&text)
        .map_err(|e| PublishError::Key(format!("{}: {e}", key.display())))?;
    if private.is_encrypted() {
        return Err(PublishError::Key(format!(
            "{} is passphrase-protected: add it to ssh-agent (`ssh-add {}`) and pass the public key ({}.pub) instead",
            key.display(),
            key.display(),
            key.display()
        )));
    }
    let sig = private
        .sign(NAMESPACE, HashAlg::Sha512, &manifest)
        .map_err(|e| PublishError::Key(format!("signing: {e}")))?;
    let pem = sig
        .to_pem(LineEnding::LF)
        .map_err(|e| PublishError::Key(format!("encoding the signature: {e}")))?;
    std::fs::write(&sig_path, &pem).map_err(|e| PublishError::io(&sig_path, e))?;
    Ok(private
        .public_key()
        .fingerprint(HashAlg::Sha256)
        .to_string())
}

/// The `ssh-keygen` to run: `$VMBENCH_SSH_KEYGEN` (set by `nix run .#bench`
/// to the flake's OpenSSH), else the one in PATH.
fn ssh_keygen() -> std::ffi::OsString {
    std::env::var_os("VMBENCH_SSH_KEYGEN")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "ssh-keygen".into())
}

/// Signs through ssh-agent: `public`'s private half must be loaded there.
/// `agent` overrides `SSH_AUTH_SOCK` (else the environment's agent is used).
pub fn sign_with_agent(
    dir: &Path,
    public: &Path,
    agent: Option<&Path>,
) -> Result<String, PublishError> {
    let pk = PublicKey::read_openssh_file(public)
        .map_err(|e| PublishError::Key(format!("{}: {e}", public.display())))?;
    let keygen = ssh_keygen();
    let mut cmd = Command::new(&keygen);
    cmd.args(["-Y", "sign", "-n", NAMESPACE, "-f"])
        .arg(public)
        .arg(dir.join(MANIFEST));
    if let Some(sock) = agent {
        cmd.env("SSH_AUTH_SOCK", sock);
    }
    let out = cmd.output().map_err(|e| {
        PublishError::Key(format!(
            "running {} (package openssh-client; or set VMBENCH_SSH_KEYGEN): {e}",
            keygen.to_string_lossy()
        ))
    })?;
    if !out.status.success() {
        return Err(PublishError::Key(format!(
            "ssh-keygen -Y sign with {} through ssh-agent failed: {}",
            public.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // ssh-keygen writes FILE.sig next to the file.
    let made = dir.join(format!("{MANIFEST}.sig"));
    std::fs::rename(&made, dir.join(SIGNATURE)).map_err(|e| PublishError::io(&made, e))?;
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

/// The outcome of `vmbench report verify`.
#[derive(Debug)]
pub struct Verified {
    /// Whose key signed the manifest.
    pub signer: Signer,
    /// What the files' check against the manifest found.
    pub files: manifest::ManifestCheck,
}

/// Checks `report.sig` over the manifest (key listed in `allowed_signers`
/// for this namespace, namespace, signature), then every file's hash.
pub fn verify(dir: &Path, allowed_signers: &Path) -> Result<Verified, PublishError> {
    let manifest =
        std::fs::read(dir.join(MANIFEST)).map_err(|e| PublishError::io(&dir.join(MANIFEST), e))?;
    let sig_text = std::fs::read_to_string(dir.join(SIGNATURE))
        .map_err(|e| PublishError::io(&dir.join(SIGNATURE), e))?;
    let sig = SshSig::from_pem(sig_text.as_bytes()).map_err(|e| {
        PublishError::BadSignature(format!("report.sig is not an SSH signature: {e}"))
    })?;
    let allowed = std::fs::read_to_string(allowed_signers)
        .map_err(|e| PublishError::io(allowed_signers, e))?;
    let signer = allowed_signer_for(&allowed, &sig)?;
    let key = PublicKey::from(sig.public_key().clone());
    key.verify(NAMESPACE, &manifest, &sig).map_err(|e| {
        PublishError::BadSignature(format!(
            "signature does not verify over MANIFEST.sha256 in namespace {NAMESPACE:?}: {e}"
        ))
    })?;
    let files = manifest::check(dir, &manifest)?;
    if !files.passed() {
        return Err(PublishError::Tampered(format!(
            "changed: {:?}; missing: {:?}; not in the manifest: {:?}",
            files.changed, files.missing, files.unlisted
        )));
    }
    Ok(Verified { signer, files })
}

/// Finds the allowed_signers line whose key is the signature's, and checks
/// that its `namespaces=` option (if any) admits ours. Format:
/// `principals [options] keytype base64-key [comment]`.
fn allowed_signer_for(allowed: &str, sig: &SshSig) -> Result<Signer, PublishError> {
    let want = PublicKey::from(sig.public_key().clone());
    for line in allowed.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((principals, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        // Options come before the key type when the next token is not one.
        let (options, key_text) = match rest.split_once(char::is_whitespace) {
            Some((first, tail))
                if !first.starts_with("ssh-")
                    && !first.starts_with("ecdsa-")
                    && !first.starts_with("sk-") =>
            {
                (first, tail.trim_start())
            }
            _ => ("", rest),
        };
        let Ok(key) = PublicKey::from_openssh(key_text) else {
            continue;
        };
        if key.key_data() != want.key_data() {
            continue;
        }
        if let Some(at) = options.find("namespaces=") {
            let v = &options[at + "namespaces=".len()..];
            let ns = match v.strip_prefix('"').and_then(|q| q.split_once('"')) {
                Some((inside, _)) => inside,
                None => v.split(',').next().unwrap_or(""),
            };
            if !ns.split(',').any(|n| n == NAMESPACE) {
                return Err(PublishError::BadSignature(format!(
                    "the key of {principals} is allowed only for namespaces {ns:?}, not {NAMESPACE:?}"
                )));
            }
        }
        return Ok(Signer {
            principals: principals.to_string(),
            fingerprint: want.fingerprint(HashAlg::Sha256).to_string(),
        });
    }
    Err(PublishError::BadSignature(format!(
        "the signing key {} is not in the allowed signers file",
        want.fingerprint(HashAlg::Sha256)
    )))
}
