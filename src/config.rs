//! The project config file, `tributary.toml`: metadata database, DAGs
//! folder, Kafka, the lake, metrics, the web server, and the `[[stream]]`
//! and `[[transform]]` declarations.
//!
//! The path comes from `--config` / `TRIBUTARY_CONFIG`, else
//! `./tributary.toml` if it exists, else the built-in defaults (which
//! declare the reference `users` stream). Values may hold `${VAR}` and
//! `${VAR:-default}` references; they are resolved when used, so secrets
//! never sit in the parsed config. Every problem is reported as
//! `file:line:col: sentence`, like DAG files.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use diag::{Diagnostic, Diags, parse_document};
use lake::config::{SchemaCatalog, StreamConfig, StreamSpec};
use lake::table::Location;
use lake::transform::{TransformConfig, TransformSpec};
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;
use toml::de::DeValue;

/// The default config file name.
pub const CONFIG_FILE: &str = "tributary.toml";

/// The built-in configuration used when there is no config file: the
/// reference pipeline's `users` stream into `./lake`, and the
/// `users_enriched` transform (users joined with the `nations` seed the
/// `nations` example DAG loads).
pub const DEFAULT_CONFIG: &str = r#"
[lake]
url = "lake"

[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"
partition_by = ["nation", "date(event_time)"]
rotation = { max_age = "2s" }

[[transform]]
name = "users_enriched"
source = "users"
sql = """
SELECT u.user_id, u.name, u.gender, u.city, u.nation, n.code AS nation_code,
       n.region, n.continent, u.latitude, u.longitude, u.event_time, u.date
FROM users u JOIN nations n ON u.nation = n.nation
WHERE n.continent = 'Europe'
"""
table = "users_enriched"
partition_by = ["region"]

[[transform]]
name = "users_by_region_5m"
source = "users_enriched"
sql = """
SELECT window_start, window_end, region, count(*) AS users,
       avg(latitude) AS avg_latitude, avg(longitude) AS avg_longitude
FROM TUMBLE(users_enriched, event_time, INTERVAL '5 minutes')
GROUP BY window_start, window_end, region
"""
table = "users_by_region_5m"
watermark = { column = "event_time", delay = "30s" }
allowed_lateness = "5m"
"#;

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct FileTop {
    #[serde(default)]
    database_url: Option<String>,
    #[serde(default)]
    dags_folder: Option<String>,
    #[serde(default)]
    kafka: KafkaSection,
    #[serde(default)]
    lake: LakeSection,
    #[serde(default)]
    metrics: MetricsSection,
    #[serde(default)]
    web: WebSection,
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

/// A loaded project config.
#[derive(Debug, Clone)]
pub struct Project {
    /// The file it came from (None: built-in defaults).
    pub path: Option<PathBuf>,
    /// Relative paths are taken from here.
    pub base_dir: PathBuf,
    /// `database_url`.
    pub database_url: Option<String>,
    /// `dags_folder`.
    pub dags_folder: Option<PathBuf>,
    /// `[kafka]`.
    pub kafka: KafkaSection,
    /// `[lake]`.
    pub lake: LakeSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[web]`.
    pub web: WebSection,
    /// Validated streams.
    pub streams: Vec<Arc<StreamSpec>>,
    /// Validated transforms (their SQL checked against the tables by
    /// [`Project::check_transforms`]).
    pub transforms: Vec<Arc<TransformSpec>>,
}

/// Named schemas streams may use (`schema = "random_user"`).
pub fn schema_catalog() -> SchemaCatalog {
    BTreeMap::from([(
        "random_user".to_string(),
        Arc::new(tasks::random_user::user_record_arrow_schema()),
    )])
}

/// A `HOST:PORT` socket address (`what` names the setting in messages;
/// `example` is a valid one to copy).
pub fn parse_addr(text: &str, what: &str, example: &str) -> Result<std::net::SocketAddr> {
    text.parse().map_err(|_| {
        let port = text.rsplit_once(':').map(|(_, p)| p);
        let why = match port.map(str::parse::<u64>) {
            None => "no port".to_string(),
            Some(Ok(p)) if p > 65535 => format!("port {p} is above 65535"),
            Some(Ok(_)) => "the host is not an IP address".to_string(),
            Some(Err(_)) => format!("{:?} is not a port number", port.unwrap_or_default()),
        };
        anyhow!("{what} {text:?}: {why} (write HOST:PORT with an IP address, e.g. {example})")
    })
}

/// Resolves `${VAR}` references of a config value.
pub fn resolve(value: &str, what: &str) -> Result<String> {
    scheduler::secrets::resolve(value)
        .map(|r| r.value)
        .map_err(|e| anyhow!("{what}: {e}"))
}

impl Project {
    /// Loads the config: `explicit` (must exist), else `./tributary.toml`
    /// if present, else the built-in defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Project> {
        let (path, text) = match explicit {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| anyhow!("cannot read the config file {}: {e}", p.display()))?;
                (Some(p.to_path_buf()), text)
            }
            None if Path::new(CONFIG_FILE).is_file() => {
                let p = PathBuf::from(CONFIG_FILE);
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| anyhow!("cannot read the config file {CONFIG_FILE}: {e}"))?;
                (Some(p), text)
            }
            None => (None, DEFAULT_CONFIG.to_string()),
        };
        let name = path
            .as_ref()
            .map_or("(built-in config)".to_string(), |p| p.display().to_string());
        let base_dir = path
            .as_ref()
            .and_then(|p| p.parent())
            .map(|d| {
                if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        match parse(&name, &text, &schema_catalog()) {
            Ok(mut project) => {
                project.path = path;
                project.base_dir = base_dir;
                Ok(project)
            }
            Err(diags) => {
                let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
                bail!(
                    "{} problem(s) in the config:\n{}",
                    diags.len(),
                    lines.join("\n")
                )
            }
        }
    }

    /// The stream of this name.
    pub fn stream(&self, name: &str) -> Result<Arc<StreamSpec>> {
        self.named("stream", &self.streams, |s| &s.name, name)
    }

    /// The transform of this name.
    pub fn transform(&self, name: &str) -> Result<Arc<TransformSpec>> {
        self.named("transform", &self.transforms, |t| &t.name, name)
    }

    /// The declaration of this name among `all`, or an error with a "did
    /// you mean" and what is declared.
    fn named<T>(
        &self,
        what: &str,
        all: &[Arc<T>],
        name_of: impl Fn(&T) -> &String,
        name: &str,
    ) -> Result<Arc<T>> {
        if let Some(found) = all.iter().find(|x| name_of(x) == name) {
            return Ok(found.clone());
        }
        let names: Vec<&str> = all.iter().map(|x| name_of(x).as_str()).collect();
        let hint = diag::suggest(name, &names)
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        let declared = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        Err(anyhow!(
            "no {what} {name:?} in {}{hint}; declared: {declared}",
            self.source()
        ))
    }

    /// Checks every transform's SQL against the tables it reads (stream
    /// tables by their declared schemas, other transforms' answers,
    /// existing tables; `dag_tables` are written by DAG tasks, checked once
    /// they exist): every problem as `file:line:col: sentence`.
    pub async fn check_transforms(
        &self,
        engine: &lake::sql::SqlEngine,
        dag_tables: &[String],
    ) -> Result<()> {
        if self.transforms.is_empty() {
            return Ok(());
        }
        let mut declared: lake::transform::DeclaredTables =
            dag_tables.iter().map(|t| (t.clone(), None)).collect();
        for s in &self.streams {
            declared.insert(s.table.clone(), Some(s.table_schema.clone()));
            declared.insert(
                s.dead_letter_table.clone(),
                Some(lake::schema::dead_letter_schema()),
            );
        }
        let problems = lake::transform::validate(&self.transforms, engine, &declared).await;
        if problems.is_empty() {
            return Ok(());
        }
        let name = self.source();
        let text = match &self.path {
            Some(p) => std::fs::read_to_string(p).unwrap_or_default(),
            None => DEFAULT_CONFIG.to_string(),
        };
        let mut d = Diags::new(&name, &text);
        for (span, msg) in problems {
            d.err(span, msg);
        }
        let lines: Vec<String> = d.into_sorted().iter().map(ToString::to_string).collect();
        bail!(
            "{} problem(s) in the transforms:\n{}",
            lines.len(),
            lines.join("\n")
        )
    }

    /// Where the config came from, for messages.
    pub fn source(&self) -> String {
        self.path
            .as_ref()
            .map_or("the built-in config".to_string(), |p| {
                p.display().to_string()
            })
    }

    /// The Kafka bootstrap servers, resolved.
    pub fn kafka_bootstrap(&self) -> Result<String> {
        let raw = self
            .kafka
            .bootstrap_servers
            .clone()
            .unwrap_or_else(|| "${TRIBUTARY_KAFKA_BOOTSTRAP:-localhost:9092}".to_string());
        resolve(&raw, "kafka.bootstrap_servers")
    }

    /// Kafka client properties, resolved.
    pub fn kafka_properties(&self) -> Result<BTreeMap<String, String>> {
        self.kafka
            .properties
            .iter()
            .map(|(k, v)| Ok((k.clone(), resolve(v, &format!("kafka.properties.{k}"))?)))
            .collect()
    }

    /// How every client reaches Kafka: bootstrap servers and properties,
    /// resolved.
    pub fn kafka_source(&self) -> Result<lake::kafka::KafkaSource> {
        Ok(lake::kafka::KafkaSource {
            bootstrap_servers: self.kafka_bootstrap()?,
            properties: self.kafka_properties()?,
        })
    }

    /// The lake location of a stream (its own `lake`, else `[lake] url`).
    pub fn location(&self, stream_lake: Option<&str>) -> Result<Location> {
        let raw = stream_lake
            .map(str::to_string)
            .or_else(|| self.lake.url.clone())
            .unwrap_or_else(|| "lake".to_string());
        let url = resolve(&raw, "lake.url")?;
        let mut options = HashMap::new();
        for (k, v) in &self.lake.storage {
            options.insert(k.clone(), resolve(v, &format!("lake.storage.{k}"))?);
        }
        Ok(Location::parse(&url, &self.base_dir, options)?)
    }

    /// The lake as SQL sees it: every table under `[lake] url`, and the
    /// tables of streams that keep theirs under a lake of their own.
    pub fn catalog(&self) -> Result<lake::sql::LakeCatalog> {
        let mut catalog = lake::sql::LakeCatalog::new(self.location(None)?);
        for s in &self.streams {
            if s.lake.is_some() {
                let location = self.location(s.lake.as_deref())?;
                catalog = catalog
                    .with_table(&s.table, location.clone())
                    .with_table(&s.dead_letter_table, location);
            }
        }
        Ok(catalog)
    }

    /// The stream writing a table (or its dead-letter table), if any.
    pub fn stream_of_table(&self, table: &str) -> Option<Arc<StreamSpec>> {
        self.streams
            .iter()
            .find(|s| s.table == table || s.dead_letter_table == table)
            .cloned()
    }
}

/// Parses and validates a config file's text.
pub fn parse(
    file: &str,
    source: &str,
    catalog: &SchemaCatalog,
) -> Result<Project, Vec<Diagnostic>> {
    let mut d = Diags::new(file, source);
    let Some(root) = parse_document(&mut d) else {
        return Err(d.into_vec());
    };
    let span = root.span();
    let mut table = root.into_inner();
    let streams_value = table.remove("stream");
    let transforms_value = table.remove("transform");
    check_references(&mut d, &table);
    let top: Option<FileTop> = d.de(
        Spanned::new(span, DeValue::Table(table)),
        "config",
        &["stream", "transform"],
    );
    let streams = streams_value
        .map(|sv| parse_streams(&mut d, sv, catalog))
        .unwrap_or_default();
    let transforms = transforms_value
        .map(|tv| parse_transforms(&mut d, tv, source, &streams))
        .unwrap_or_default();
    let top = match top {
        Some(top) if d.is_empty() => top,
        _ => return Err(d.into_sorted()),
    };
    Ok(Project {
        path: None,
        base_dir: PathBuf::from("."),
        database_url: top.database_url,
        dags_folder: top.dags_folder.map(PathBuf::from),
        kafka: top.kafka,
        lake: top.lake,
        metrics: top.metrics,
        web: top.web,
        streams,
        transforms,
    })
}

/// The values resolved when used (`database_url`, everything under
/// `[kafka]`, `[lake]` and `[web]`): a malformed `${VAR}` reference in one
/// is reported here, at the value, rather than when a command first uses it.
fn check_references(d: &mut Diags<'_>, table: &toml::de::DeTable<'_>) {
    fn walk(d: &mut Diags<'_>, path: &str, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::String(text) => {
                if let Err(e) = scheduler::secrets::check_syntax(text) {
                    d.err(Some(v.span()), format!("{path}: {e}"));
                }
            }
            DeValue::Table(t) => {
                for (k, inner) in t {
                    walk(d, &format!("{path}.{}", k.get_ref()), inner);
                }
            }
            _ => {}
        }
    }
    for key in ["database_url", "kafka", "lake", "web"] {
        if let Some(v) = table.get(key) {
            walk(d, key, v);
        }
    }
}

/// Every `[[stream]]`, each deserialized and resolved on its own; two
/// streams may not share a name or a table.
fn parse_streams<'a>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    catalog: &SchemaCatalog,
) -> Vec<Arc<StreamSpec>> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        d.err(Some(span), "stream: write [[stream]] tables");
        return Vec::new();
    };
    let mut streams: Vec<Arc<StreamSpec>> = Vec::new();
    for item in items {
        let Some(cfg) = d.de::<StreamConfig>(item, "[[stream]]", &[]) else {
            continue;
        };
        let name_span = cfg.name.span();
        match cfg.resolve(catalog) {
            Ok(spec) => {
                if streams.iter().any(|s| s.name == spec.name) {
                    d.err(
                        Some(name_span),
                        format!("stream {:?} is declared twice", spec.name),
                    );
                } else if let Some(other) = streams
                    .iter()
                    .find(|s| s.table == spec.table && s.lake == spec.lake)
                {
                    d.err(
                        Some(name_span),
                        format!(
                            "streams {:?} and {:?} write the same table {:?}",
                            other.name, spec.name, spec.table
                        ),
                    );
                } else {
                    streams.push(Arc::new(spec));
                }
            }
            Err(problems) => {
                for (sp, msg) in problems {
                    d.err(sp, format!("stream {:?}: {msg}", cfg.name.get_ref()));
                }
            }
        }
    }
    streams
}

/// Every `[[transform]]`, each resolved on its own; names and output
/// tables are unique, and no output is a stream's table.
fn parse_transforms<'a>(
    d: &mut Diags<'a>,
    value: Spanned<DeValue<'a>>,
    text: &str,
    streams: &[Arc<StreamSpec>],
) -> Vec<Arc<TransformSpec>> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        d.err(Some(span), "transform: write [[transform]] tables");
        return Vec::new();
    };
    let mut out: Vec<Arc<TransformSpec>> = Vec::new();
    for item in items {
        let Some(cfg) = d.de::<TransformConfig>(item, "[[transform]]", &[]) else {
            continue;
        };
        let name = cfg.name.get_ref().clone();
        match cfg.resolve(text) {
            Ok(spec) => {
                let clash = if out.iter().any(|t| t.name == spec.name) {
                    Some((
                        cfg.name.span(),
                        format!("transform {name:?} is declared twice"),
                    ))
                } else if let Some(o) = out.iter().find(|t| t.table == spec.table) {
                    Some((
                        cfg.table.span(),
                        format!(
                            "transforms {:?} and {name:?} write the same table {:?}",
                            o.name, spec.table
                        ),
                    ))
                } else {
                    streams
                        .iter()
                        .find(|s| s.table == spec.table || s.dead_letter_table == spec.table)
                        .map(|s| {
                            (
                                cfg.table.span(),
                                format!(
                                    "transform {name:?}: table {:?} is written by stream {:?}; write the output to a table of its own",
                                    spec.table, s.name
                                ),
                            )
                        })
                };
                match clash {
                    Some((at, msg)) => d.err(Some(at), msg),
                    None => out.push(Arc::new(spec)),
                }
            }
            Err(problems) => {
                for (sp, msg) in problems {
                    d.err(sp, format!("transform {name:?}: {msg}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_config_declares_the_users_stream() {
        let p = parse("x", DEFAULT_CONFIG, &schema_catalog()).unwrap();
        assert_eq!(p.streams.len(), 1);
        let s = &p.streams[0];
        assert_eq!((s.name.as_str(), s.table.as_str()), ("users", "users"));
        let parts: Vec<&str> = s.partition_by.iter().map(|p| p.name()).collect();
        assert_eq!(parts, ["nation", "date"]);
    }

    #[test]
    fn problems_point_at_file_line_col() {
        let text = r#"database_url = "postgres://x"
kafak = { bootstrap_servers = "k:9092" }

[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_usr"

[[stream]]
name = "events"
topics = ["events"]
table = "events"
schema = "random_user"
partition_by = ["natoin"]
rotaton = { max_rows = 5 }
"#;
        let errs: Vec<String> = parse("tributary.toml", text, &schema_catalog())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errs.join("\n");
        assert!(
            all.contains("tributary.toml:2:1: config: unknown key `kafak` (did you mean `kafka`?)"),
            "{all}"
        );
        assert!(
            all.contains("tributary.toml:8:10: stream \"users\": unknown schema \"random_usr\""),
            "{all}"
        );
        assert!(
            all.contains(
                "tributary.toml:16:1: [[stream]]: unknown key `rotaton` (did you mean `rotation`?)"
            ),
            "{all}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let p = parse(
            "tributary.example.toml",
            include_str!("../tributary.example.toml"),
            &schema_catalog(),
        )
        .unwrap();
        assert_eq!(p.streams.len(), 1);
        assert_eq!(p.transforms.len(), 2);
        assert_eq!(p.metrics.bind.as_deref(), Some("127.0.0.1:9464"));
    }

    #[test]
    fn transform_problems_point_at_their_keys() {
        let text = r#"[[stream]]
name = "users"
topics = ["users"]
table = "users"
schema = "random_user"

[[transform]]
name = "t1"
source = "users"
sql = """
SELECT id FROM people
"""
table = "users"
trigger = "soon"

[[transform]]
name = "t2"
source = "users"
sql = "SELEC id FROM users"
table = "out"
max_source_versions = 0

[[transform]]
name = "t3"
source = "users"
sql = "SELECT * FROM users"
table = "out3"
emit = "final"

[[transform]]
name = "t4"
source = "users"
sql = "SELECT window_start, count(*) FROM HOP(users, event_time, INTERVAL '2 minutes', INTERVAL '5 minutes') GROUP BY 1"
table = "out4"
"#;
        let errs: Vec<String> = parse("f.toml", text, &schema_catalog())
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        let all = errs.join("\n");
        assert!(
            all.contains("f.toml:10:7: transform \"t1\": sql: the query does not read its source table \"users\" (it reads people)"),
            "{all}"
        );
        assert!(
            all.contains("f.toml:13:9: transform \"t1\": table \"users\" is the source"),
            "{all}"
        );
        assert!(
            all.contains("f.toml:14:11: transform \"t1\": trigger"),
            "{all}"
        );
        assert!(all.contains("f.toml:19:8: transform \"t2\": sql:"), "{all}");
        assert!(
            all.contains("f.toml:21:23: transform \"t2\": max_source_versions must be at least 1"),
            "{all}"
        );
    }

    #[test]
    fn duplicate_streams_and_tables_are_refused() {
        let one = "[[stream]]\nname = \"a\"\ntopics = [\"t\"]\ntable = \"t1\"\nschema = \"random_user\"\n";
        let two = "[[stream]]\nname = \"a\"\ntopics = [\"t\"]\ntable = \"t2\"\nschema = \"random_user\"\n";
        let three = "[[stream]]\nname = \"b\"\ntopics = [\"t\"]\ntable = \"t1\"\nschema = \"random_user\"\n";
        let errs = parse("f", &format!("{one}{two}{three}"), &schema_catalog()).unwrap_err();
        let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(all[0].contains("stream \"a\" is declared twice"), "{all:?}");
        assert!(all[1].contains("write the same table \"t1\""), "{all:?}");
    }
}
