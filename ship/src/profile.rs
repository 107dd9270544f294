//! The AWS shared files (`~/.aws/credentials`, `~/.aws/config`), which object_store does
//! not read: keys, region and endpoint of the profile `AWS_PROFILE` names (else
//! `default`), below what the environment says, as the AWS CLI and SDKs order them.
//! Profiles that need another program (roles, SSO, `credential_process`) are refused
//! with what to do instead, rather than left to fail later against instance metadata.
//! Values are never printed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What a profile adds to the environment's settings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Profile {
    /// `(access key id, secret, session token)`, unless the environment has keys.
    pub keys: Option<(String, String, Option<String>)>,
    /// Unless `AWS_REGION`/`AWS_DEFAULT_REGION` is set.
    pub region: Option<String>,
    /// `endpoint_url`, unless `AWS_ENDPOINT`/`AWS_ENDPOINT_URL` is set.
    pub endpoint: Option<String>,
}

/// The profile from the files the environment points at (missing files are empty).
pub fn from_files() -> Result<Profile> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from).unwrap_or_default();
    let credentials = env("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/credentials"));
    let config = env("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
    let read = |p: &Path| match std::fs::read_to_string(p) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    };
    resolve(&read(&credentials)?, &read(&config)?, &env, &format!("{} or {}", credentials.display(), config.display()))
}

/// The profile from the two files' texts; `env` looks up environment variables.
pub fn resolve(credentials: &str, config: &str, env: &dyn Fn(&str) -> Option<String>, files: &str) -> Result<Profile> {
    let explicit = env("AWS_PROFILE").or_else(|| env("AWS_DEFAULT_PROFILE"));
    let name = explicit.clone().unwrap_or_else(|| "default".into());
    let creds = sections(credentials);
    let conf = sections(config);
    // The credentials file names sections plainly; the config file as `profile NAME`
    // (but `default` plainly). Keys in the credentials file win.
    let from_conf = conf.get(&format!("profile {name}")).or_else(|| conf.get(&name).filter(|_| name == "default"));
    let from_creds = creds.get(&name);
    if from_conf.is_none() && from_creds.is_none() {
        if explicit.is_some() {
            bail!("AWS_PROFILE={name}: no such profile in {files}");
        }
        return Ok(Profile::default());
    }
    let mut p: HashMap<String, String> = from_conf.cloned().unwrap_or_default();
    p.extend(from_creds.cloned().unwrap_or_default());
    let env_keys = env("AWS_ACCESS_KEY_ID").is_some();
    let keys = match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
        _ if env_keys => None,
        (Some(id), Some(secret)) => Some((id.clone(), secret.clone(), p.get("aws_session_token").cloned())),
        (Some(_), None) | (None, Some(_)) => {
            bail!("profile {name} in {files}: has only one of aws_access_key_id and aws_secret_access_key")
        }
        (None, None) => {
            if let Some(k) = ["role_arn", "sso_session", "sso_start_url", "credential_process", "web_identity_token_file"]
                .iter()
                .find(|k| p.contains_key(**k))
            {
                bail!(
                    "profile {name} in {files}: gets its credentials through {k}, which tcpfr does not run; \
                     give it keys instead, e.g. eval \"$(aws configure export-credentials --profile {name} --format env)\""
                );
            }
            None
        }
    };
    let region = if env("AWS_REGION").is_some() || env("AWS_DEFAULT_REGION").is_some() { None } else { p.get("region").cloned() };
    let endpoint =
        if env("AWS_ENDPOINT").is_some() || env("AWS_ENDPOINT_URL").is_some() { None } else { p.get("endpoint_url").cloned() };
    Ok(Profile { keys, region, endpoint })
}

/// `[section]` → its `key = value` lines (comments `#`/`;`, blank lines and anything
/// outside a section are skipped; keys are case-insensitive, as the AWS CLI reads them).
fn sections(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((k, v))) = (&current, line.split_once('=')) {
            out.entry(section.clone()).or_default().insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: &str = "# keys\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s3cr3t\n\n\
        [fleet]\nAWS_ACCESS_KEY_ID=AKIAFLEET\naws_secret_access_key=fl33t\naws_session_token = tok\n\
        [half]\naws_access_key_id = AKIAHALF\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile fleet]\nregion = us-east-2\nendpoint_url = http://127.0.0.1:9000\n\
        [profile role]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n[profile conf-keys]\n\
        aws_access_key_id = AKIACONF\naws_secret_access_key = c0nf\n";

    fn with(vars: &[(&str, &str)]) -> Result<Profile> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve(CREDENTIALS, CONFIG, &|k| vars.get(k).cloned(), "FILES")
    }

    #[test]
    fn the_named_profile_below_the_environment() {
        let p = with(&[]).unwrap();
        assert_eq!(p.keys, Some(("AKIADEFAULT".into(), "s3cr3t".into(), None)));
        assert_eq!((p.region.as_deref(), p.endpoint), (Some("eu-west-1"), None));

        let p = with(&[("AWS_PROFILE", "fleet")]).unwrap();
        assert_eq!(p.keys, Some(("AKIAFLEET".into(), "fl33t".into(), Some("tok".into()))));
        assert_eq!((p.region.as_deref(), p.endpoint.as_deref()), (Some("us-east-2"), Some("http://127.0.0.1:9000")));

        // What the environment has, the profile does not override.
        let p = with(&[("AWS_PROFILE", "fleet"), ("AWS_ACCESS_KEY_ID", "x"), ("AWS_REGION", "r"), ("AWS_ENDPOINT", "e")]).unwrap();
        assert_eq!(p, Profile::default());

        // Keys may sit in the config file too.
        let p = with(&[("AWS_PROFILE", "conf-keys")]).unwrap();
        assert_eq!(p.keys, Some(("AKIACONF".into(), "c0nf".into(), None)));
    }

    #[test]
    fn profiles_that_cannot_be_used_are_explained() {
        let e = with(&[("AWS_PROFILE", "nope")]).unwrap_err().to_string();
        assert!(e.contains("AWS_PROFILE=nope") && e.contains("FILES"), "{e}");
        let e = with(&[("AWS_PROFILE", "role")]).unwrap_err().to_string();
        assert!(e.contains("role_arn") && e.contains("export-credentials"), "{e}");
        let e = with(&[("AWS_PROFILE", "half")]).unwrap_err().to_string();
        assert!(e.contains("only one of"), "{e}");
        // No files, no profile asked for: nothing to add.
        assert_eq!(resolve("", "", &|_| None, "FILES").unwrap(), Profile::default());
        // Secrets never appear in messages.
        for p in ["nope", "role", "half"] {
            let e = format!("{:#}", with(&[("AWS_PROFILE", p)]).unwrap_err());
            assert!(!e.contains("s3cr3t") && !e.contains("fl33t") && !e.contains("AKIA"), "{e}");
        }
    }
}
