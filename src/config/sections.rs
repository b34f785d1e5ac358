//! The config file's plain sections (`[kafka]`, `[lake]`, `[metrics]`,
//! `[web]`) and its top level, as serde reads them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTop {
    #[serde(default)]
    pub(super) database_url: Option<String>,
    #[serde(default)]
    pub(super) dags_folder: Option<String>,
    #[serde(default)]
    pub(super) kafka: KafkaSection,
    #[serde(default)]
    pub(super) lake: LakeSection,
    #[serde(default)]
    pub(super) metrics: MetricsSection,
    #[serde(default)]
    pub(super) web: WebSection,
}

/// `[kafka]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// `bootstrap.servers` (default `${TRIBUTARY_KAFKA_BOOTSTRAP:-localhost:9092}`).
    #[serde(default)]
    pub bootstrap_servers: Option<String>,
    /// Extra librdkafka properties for every client (security, timeouts).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// `[lake]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeSection {
    /// Where tables live: `s3://bucket/prefix`, `file:///path` or a path
    /// relative to the config file (default `lake`).
    #[serde(default)]
    pub url: Option<String>,
    /// Object-store options (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, …).
    #[serde(default)]
    pub storage: BTreeMap<String, String>,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// Address of the Prometheus endpoint of `stream run` (default
    /// 127.0.0.1:9464; `standalone` also serves `/metrics` on the web UI).
    #[serde(default)]
    pub bind: Option<String>,
}

/// `[web]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// Address of the web UI and API (default 127.0.0.1:8080).
    #[serde(default)]
    pub bind: Option<String>,
    /// Token every request needs (required off loopback); `/healthz`,
    /// `/metrics` and the login page stay open.
    #[serde(default)]
    pub token: Option<String>,
    /// With a token, let anyone read pages and GET the API; changes still
    /// need the token. Default false.
    #[serde(default)]
    pub anonymous_read: bool,
    /// Without a token, `Host` names the server answers to besides
    /// loopback ones (a reverse proxy's name), against DNS rebinding.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}
