//! The server's configuration file: extra Kubernetes kinds, bearer tokens, Swift accounts and
//! limits. TOML or JSON, told apart by the file's extension.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `revkv serve --config FILE` reads; every part is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Kinds served beside the core ones, under `/apis/<group>/<version>`.
    pub kinds: Vec<KindConfig>,
    /// Bearer tokens accepted by the Kubernetes endpoints. With none, they need no token.
    pub tokens: Vec<String>,
    /// TempAuth accounts of the Swift endpoints. With none, `/auth/v1.0` refuses everyone.
    pub swift_accounts: Vec<SwiftAccount>,
    /// Serves HTTPS with this certificate instead of plain HTTP. kubectl sends a kubeconfig's
    /// token only over TLS, so token auth for kubectl needs it.
    pub tls: Option<TlsConfig>,
    /// Request and resource limits.
    pub limits: Limits,
    /// Leaves out the access log, one line on stderr per request: a benchmark's client makes
    /// thousands of requests a second.
    pub quiet: bool,
}

/// A PEM certificate chain and its PEM private key.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// One extra Kubernetes kind.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindConfig {
    /// The API group, e.g. `revkv.io`; not empty (the core group is the server's own).
    pub group: String,
    /// The version, e.g. `v1`.
    pub version: String,
    /// The kind, e.g. `Widget`.
    pub kind: String,
    /// The resource name in URLs, e.g. `widgets`.
    pub plural: String,
    /// The singular name; the kind in lower case by default.
    #[serde(default)]
    pub singular: Option<String>,
    /// Whether objects live in namespaces (the default) or in the cluster.
    #[serde(default = "namespaced_by_default")]
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `["wd"]`.
    #[serde(default)]
    pub short_names: Vec<String>,
    /// Dotted paths of string fields that field selectors may match, e.g. `spec.color`.
    #[serde(default)]
    pub selectable_fields: Vec<String>,
}

fn namespaced_by_default() -> bool {
    true
}

/// A TempAuth user: `X-Auth-User: <account>:<user>` with `X-Auth-Key: <key>`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwiftAccount {
    /// The account; its storage URL is `/v1/AUTH_<account>`.
    pub account: String,
    /// The user within the account.
    pub user: String,
    /// The user's key (password).
    pub key: String,
}

/// Limits on requests; each has a default that suits a loopback server.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// How long one request may take, reading its body included.
    pub request_timeout_seconds: u64,
    /// How long a client may take to send a request's headers.
    pub header_timeout_seconds: u64,
    /// The largest Kubernetes request body.
    pub max_body_bytes: usize,
    /// The largest Swift object.
    pub max_object_bytes: usize,
    /// Requests handled at once; more wait for a slot, within their timeout.
    pub max_concurrent_requests: usize,
    /// Open connections; more are refused until one closes.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout_seconds: 60,
            header_timeout_seconds: 10,
            // etcd's default request limit is 1.5 MiB; the engine stores values up to 1 MiB.
            max_body_bytes: 1024 * 1024,
            max_object_bytes: 1_000_000,
            max_concurrent_requests: 256,
            max_connections: 4096,
        }
    }
}

impl Limits {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds.max(1))
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_seconds.max(1))
    }
}

/// Why a configuration file was refused.
#[derive(Debug)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl TlsConfig {
    /// Loads the certificate and key into a TLS acceptor.
    ///
    /// # Errors
    ///
    /// When a file cannot be read or parsed, or the key does not fit the certificate.
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, ConfigError> {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let refuse = |what: &Path, error: &dyn fmt::Display| {
            ConfigError(format!("{}: {error}", what.display()))
        };
        let certs = CertificateDer::pem_file_iter(&self.cert_file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|error| refuse(&self.cert_file, &error))?;
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .map_err(|error| refuse(&self.key_file, &error))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|error| refuse(&self.cert_file, &error))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
    }
}

impl Config {
    /// Reads a `.toml` or `.json` configuration file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or parsed, or declares a kind the server cannot serve.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError(format!("cannot read {name}: {error}")))?;
        let config: Config = match path.extension().and_then(|ext| ext.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|error| error.to_string()),
            Some("json") => serde_json::from_str(&text).map_err(|error| error.to_string()),
            _ => Err("the file name must end in .toml or .json".to_owned()),
        }
        .map_err(|error| ConfigError(format!("{name}: {error}")))?;
        config
            .check()
            .map_err(|error| ConfigError(format!("{name}: {error}")))?;
        Ok(config)
    }

    /// Refuses kinds whose names would not make valid, unambiguous URLs.
    pub(crate) fn check(&self) -> Result<(), String> {
        let is_name = |text: &str| {
            !text.is_empty()
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        for kind in &self.kinds {
            if !is_name(&kind.group) || !is_name(&kind.version) || !is_name(&kind.plural) {
                return Err(format!(
                    "kind {:?}: group, version and plural must be non-empty names of letters, \
                     digits, '-' and '.'",
                    kind.kind
                ));
            }
            if kind.kind.is_empty() || !kind.kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("kind {:?} must be letters and digits", kind.kind));
            }
        }
        for account in &self.swift_accounts {
            if account.account.is_empty() || account.account.contains(['/', ':']) {
                return Err(format!(
                    "Swift account {:?} must be non-empty, without '/' or ':'",
                    account.account
                ));
            }
        }
        Ok(())
    }
}
