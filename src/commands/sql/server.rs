//! `tributary sql` answered by a running server of the project
//! (`tributary web`, `standalone`): its engine is warm — table logs read,
//! Parquet footers cached, a view's speed partials kept — where a new
//! process starts cold. The answer comes back as an Arrow IPC stream
//! ([`lake::sql::wire`]) and is printed here exactly as a local one.
//!
//! Which server: `--server URL`, else the project's web address (`[web]
//! bind`, default 127.0.0.1:8080). `GET /api/v1/server` must name this
//! project ([`crate::config::Project::identity`]) within 2 s; when nothing
//! answers there, or another project's server does, the query runs here.
//! The query itself names the project too (the server refuses another).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use lake::deltalake::arrow::array::RecordBatch;
use lake::deltalake::arrow::buffer::Buffer;
use lake::deltalake::arrow::datatypes::{Schema, SchemaRef};
use lake::deltalake::arrow::ipc::reader::StreamDecoder;
use lake::sql::Answer;
use lake::sql::wire::{self, AnswerMeta};
use reqwest::StatusCode;

use crate::cli::SqlArgs;
use crate::settings::Settings;

/// A server that may answer.
pub struct Server {
    /// `http://host:port`.
    pub url: String,
    /// Named by `--server`: it must answer (no falling back).
    explicit: bool,
    token: Option<String>,
    project: String,
    client: reqwest::Client,
}

/// What a server said to a query.
pub enum Reply<T> {
    /// Its answer.
    Answer(T),
    /// Nothing to ask, or it cannot answer for this project: run the query
    /// here. With a note when the user should know why.
    RunHere(Option<String>),
}

impl Server {
    /// The server to ask, if any: none with `--local`, `--explain`, or a
    /// limit given for this process (`--timeout`, `--memory-limit`).
    pub fn pick(settings: &Settings, a: &SqlArgs) -> Result<Option<Server>> {
        let (url, explicit) = match &a.server {
            Some(u) => (u.trim_end_matches('/').to_string(), true),
            None if a.local || a.explain || a.timeout.is_some() || a.memory_limit.is_some() => {
                return Ok(None);
            }
            None => {
                let addr = crate::commands::web::bind_addr(None, &settings.project)?;
                let host = match addr.ip() {
                    ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
                    ip if ip.is_unspecified() => "[::1]".to_string(),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    ip => ip.to_string(),
                };
                (format!("http://{host}:{}", addr.port()), false)
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(if explicit { 10_000 } else { 300 }))
            .no_proxy()
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Some(Server {
            url,
            explicit,
            token: crate::commands::web::token(&settings.project)?,
            project: settings.project.identity(),
            client,
        }))
    }

    /// Asks for the first `limit` rows, counted and timed by the server.
    pub async fn collect(&self, sql: &str, source: &str, limit: u64) -> Result<Reply<Answer>> {
        let mut incoming = match self.ask(sql, source, Some(limit)).await? {
            Reply::Answer(i) => i,
            Reply::RunHere(n) => return Ok(Reply::RunHere(n)),
        };
        let mut batches = Vec::new();
        while let Some(b) = incoming.next().await? {
            batches.push(b);
        }
        let meta = incoming.meta;
        Ok(Reply::Answer(Answer {
            schema: incoming.schema,
            rows: meta
                .rows
                .unwrap_or_else(|| batches.iter().map(|b| b.num_rows() as u64).sum()),
            batches,
            tables: meta.tables,
            made_of: meta.made_of,
            elapsed: meta.elapsed.unwrap_or_default(),
        }))
    }

    /// Asks for every row, to read as they come.
    pub async fn stream(&self, sql: &str, source: &str) -> Result<Reply<Incoming>> {
        self.ask(sql, source, None).await
    }

    /// Whether the server is there and serves this project. Asked with a
    /// short time limit: whatever listens on the address, the query does
    /// not wait on it.
    async fn serves_us(&self) -> Result<Reply<()>> {
        let mut req = self
            .client
            .get(format!("{}/api/v1/server", self.url))
            .timeout(Duration::from_secs(if self.explicit { 30 } else { 2 }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let here = |note: String| {
            if self.explicit {
                bail!("{note}")
            }
            Ok(Reply::RunHere(None))
        };
        let resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                let (message, _) = error_message(r).await;
                let note = format!("the server at {} answered {status} ({message})", self.url);
                if self.explicit || status != StatusCode::UNAUTHORIZED {
                    return here(note);
                }
                return Ok(Reply::RunHere(Some(format!(
                    "{note}; running the query here"
                ))));
            }
            Err(e) => return here(format!("cannot reach the server at {}: {e}", self.url)),
        };
        let info = resp.text().await.map_err(|e| e.to_string());
        let info: serde_json::Value =
            match info.and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
                Ok(v) => v,
                Err(e) => return here(format!("{} is not a Tributary server: {e}", self.url)),
            };
        match info["project"].as_str() {
            Some(p) if p == self.project && info["sql"] == true => Ok(Reply::Answer(())),
            other => here(format!(
                "the server at {} serves the project {}, not {}",
                self.url,
                other.unwrap_or("(none)"),
                self.project
            )),
        }
    }

    async fn ask(&self, sql: &str, source: &str, limit: Option<u64>) -> Result<Reply<Incoming>> {
        if let Reply::RunHere(note) = self.serves_us().await? {
            return Ok(Reply::RunHere(note));
        }
        let mut req = self
            .client
            .post(format!("{}/api/v1/sql", self.url))
            .header(reqwest::header::ACCEPT, wire::MEDIA_TYPE)
            .header(wire::PROJECT_HEADER, self.project.as_bytes())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({"sql": sql, "limit": limit}).to_string());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if self.explicit => bail!("cannot reach the server at {}: {e}", self.url),
            Err(_) => return Ok(Reply::RunHere(None)), // none listens
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(Reply::Answer(Incoming::open(resp, &self.url).await?));
        }
        let (message, placed) = error_message(resp).await;
        match status {
            // The query's own problem: the same message a local run gives
            // (`source:line:col: …` when the place is known).
            StatusCode::BAD_REQUEST if placed => bail!("{source}:{message}"),
            StatusCode::BAD_REQUEST => bail!("{source}: {message}"),
            StatusCode::CONFLICT if !self.explicit => Ok(Reply::RunHere(None)),
            _ if self.explicit => bail!("the server at {} answered {status}: {message}", self.url),
            _ => Ok(Reply::RunHere(Some(format!(
                "the server at {} answered {status} ({message}); running the query here",
                self.url
            )))),
        }
    }
}

/// An error response's `error.message` (else its text), and whether it
/// starts with the place in the SQL (`line:col: …`).
async fn error_message(resp: reqwest::Response) -> (String, bool) {
    let text = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    match v["error"]["message"].as_str() {
        Some(m) => (m.to_string(), v["error"]["line"].is_u64()),
        None => (text, false),
    }
}

/// An answer arriving: its columns and what it says, then its batches.
pub struct Incoming {
    resp: reqwest::Response,
    decoder: StreamDecoder,
    buf: Buffer,
    /// A batch decoded with the schema, not yet handed out.
    pending: Option<RecordBatch>,
    url: String,
    /// The answer's columns (without the metadata the server added).
    pub schema: SchemaRef,
    /// The tables read, the layers' sentences and, with a limit, the count.
    pub meta: AnswerMeta,
}

impl Incoming {
    async fn open(resp: reqwest::Response, url: &str) -> Result<Incoming> {
        let mut i = Incoming {
            resp,
            decoder: StreamDecoder::new(),
            buf: Buffer::from_vec(Vec::<u8>::new()),
            pending: None,
            url: url.to_string(),
            schema: std::sync::Arc::new(Schema::empty()),
            meta: AnswerMeta::default(),
        };
        // The schema is the stream's first message; the chunk holding it
        // may hold the first batch too (kept in `pending`).
        while i.decoder.schema().is_none() {
            if !i.decode_more().await? {
                bail!("the server at {url} sent an answer without its columns");
            }
        }
        let with_meta = i.decoder.schema().expect("decoded above");
        (i.meta, i.schema) = AnswerMeta::detach(&with_meta).map_err(|e| i.bad(e))?;
        Ok(i)
    }

    /// The next batch; `None` at the end of the answer.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(b) = self.pending.take() {
                // Under the answer's own schema (without the server's
                // metadata), as a local answer's batches are.
                return Ok(Some(RecordBatch::try_new(
                    self.schema.clone(),
                    b.columns().to_vec(),
                )?));
            }
            if !self.decode_more().await? {
                self.decoder.finish().map_err(|e| self.bad(e))?;
                return Ok(None);
            }
        }
    }

    /// Decodes what is buffered, reading the next chunk of the body when
    /// nothing is; a batch completed goes to `pending`. False at the end
    /// of the body.
    async fn decode_more(&mut self) -> Result<bool> {
        if self.buf.is_empty() {
            match self.resp.chunk().await {
                Ok(Some(c)) => self.buf = Buffer::from(c),
                Ok(None) => return Ok(false),
                Err(e) => bail!(
                    "the server at {} stopped sending the answer part way ({e}); its log says why",
                    self.url
                ),
            }
        }
        self.pending = self
            .decoder
            .decode(&mut self.buf)
            .map_err(|e| self.bad(e))?;
        Ok(true)
    }

    fn bad(&self, e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::anyhow!(
            "the server at {} sent an answer that cannot be read: {e}",
            self.url
        )
    }
}
