//! The project config file, `tributary.toml`: metadata database, DAGs
//! folder, Kafka, the lake, metrics, the web server, and the `[[stream]]`,
//! `[[transform]]` and `[[view]]` declarations.
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
use diag::Diags;
use lake::config::{SchemaCatalog, StreamSpec};
use lake::table::Location;
use lake::transform::TransformSpec;
use lake::view::ViewSpec;

/// The default config file name.
pub const CONFIG_FILE: &str = "tributary.toml";

mod builtin;
mod parse;
mod sections;

pub use builtin::DEFAULT_CONFIG;
pub use sections::{KafkaSection, LakeSection, MetricsSection, WebSection};

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
    /// Validated Lambda views (their SQL checked against the tables by
    /// [`Project::check_transforms`]).
    pub views: Vec<Arc<ViewSpec>>,
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
    /// What names this project to a running server (`tributary sql` asks
    /// one only when it serves the same project): the absolute path of its
    /// config file, or of its folder when it runs on built-in defaults.
    pub fn identity(&self) -> String {
        let p = self.path.as_deref().unwrap_or(&self.base_dir);
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    }

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
        match parse::parse(&name, &text, &schema_catalog()) {
            Ok(d) => Ok(Project {
                path,
                base_dir,
                database_url: d.top.database_url,
                dags_folder: d.top.dags_folder.map(PathBuf::from),
                kafka: d.top.kafka,
                lake: d.top.lake,
                metrics: d.top.metrics,
                web: d.top.web,
                streams: d.streams,
                transforms: d.transforms,
                views: d.views,
            }),
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

    /// The view of this name.
    pub fn view(&self, name: &str) -> Result<Arc<ViewSpec>> {
        self.named("view", &self.views, |v| &v.name, name)
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
        if self.transforms.is_empty() && self.views.is_empty() {
            return Ok(());
        }
        let mut declared: lake::transform::DeclaredTables =
            dag_tables.iter().map(|t| (t.clone(), None)).collect();
        if self.path.is_none() {
            for t in builtin::BUILT_IN_SEEDED {
                declared.entry((*t).to_string()).or_insert(None);
            }
        }
        for s in &self.streams {
            declared.insert(s.table.clone(), Some(s.table_schema.clone()));
            declared.insert(
                s.dead_letter_table.clone(),
                Some(lake::schema::dead_letter_schema()),
            );
        }
        let mut problems = lake::transform::validate(&self.transforms, engine, &declared).await;
        for t in &self.transforms {
            declared.entry(t.table.clone()).or_insert(None);
        }
        problems.extend(lake::view::check::validate(&self.views, engine, &declared).await);
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
            "{} problem(s) in the transforms and views:\n{}",
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
        if !self.views.is_empty() {
            catalog = catalog.with_layers(Arc::new(lake::view::Views::new(&self.views)));
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
