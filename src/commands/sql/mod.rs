//! `tributary sql`: a read-only query over the lake, printed as a table,
//! JSON or CSV, or written to a Parquet, CSV or JSON file.

mod server;

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lake::deltalake::arrow::datatypes::SchemaRef;
use lake::sql::encode::{self, AnswerOut, CsvOut, JsonOut, ParquetOut};
use lake::sql::{Answer, Limits, SqlEngine, SqlError};
use lake::units::{parse_bytes, parse_duration};

use self::server::{Reply, Server};
use crate::cli::{Output, SqlArgs};
use crate::output;
use crate::settings::Settings;

/// `sql …`.
pub async fn run(settings: &Settings, a: &SqlArgs) -> Result<ExitCode> {
    let (source, text) = query_text(a)?;
    if let Some(server) = Server::pick(settings, a)? {
        match on_server(&server, settings, a, &source, &text).await? {
            Reply::Answer(code) => return Ok(code),
            Reply::RunHere(Some(note)) => eprintln!("note: {note}"),
            Reply::RunHere(None) => {}
        }
    }
    let limits = Limits {
        memory: parse_bytes(a.memory_limit.as_deref().unwrap_or(DEFAULT_MEMORY))
            .map_err(|e| anyhow::anyhow!("--memory-limit: {e}"))?,
        timeout: parse_duration(a.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT), "--timeout")
            .map_err(anyhow::Error::msg)?,
    };
    let engine = SqlEngine::new(settings.project.catalog()?, limits).map_err(fail(&source))?;
    let query = engine.plan(&text).await.map_err(fail(&source))?;
    if a.explain {
        print!("{}", query.explain(a.analyze).await.map_err(fail(&source))?);
        return Ok(ExitCode::SUCCESS);
    }
    let schema = query.schema();
    let Some(mut out) = sink(settings, a, &schema)? else {
        let answer = query
            .collect(Some(a.max_rows))
            .await
            .map_err(fail(&source))?;
        print_answer(&answer, None)?;
        return Ok(ExitCode::SUCCESS);
    };
    let rows = query
        .for_each(|b| out.write(b).map_err(lake_err))
        .await
        .map_err(fail(&source))?;
    out.finish(&schema)?;
    wrote(a, rows);
    Ok(ExitCode::SUCCESS)
}

/// `--timeout` and `--memory-limit` unless given.
const DEFAULT_TIMEOUT: &str = "5m";
const DEFAULT_MEMORY: &str = "1GiB";

/// The query answered by a running server, printed as a local answer is.
async fn on_server(
    server: &Server,
    settings: &Settings,
    a: &SqlArgs,
    source: &str,
    text: &str,
) -> Result<Reply<ExitCode>> {
    let (mut incoming, mut out) = match settings.output {
        Output::Table if a.out.is_none() => {
            return Ok(match server.collect(text, source, a.max_rows).await? {
                Reply::Answer(answer) => {
                    print_answer(&answer, Some(&server.url))?;
                    Reply::Answer(ExitCode::SUCCESS)
                }
                Reply::RunHere(n) => Reply::RunHere(n),
            });
        }
        _ => match server.stream(text, source).await? {
            Reply::Answer(i) => {
                let out = sink(settings, a, &i.schema)?.expect("not a table");
                (i, out)
            }
            Reply::RunHere(n) => return Ok(Reply::RunHere(n)),
        },
    };
    let mut rows = 0u64;
    while let Some(b) = incoming.next().await? {
        rows += b.num_rows() as u64;
        out.write(&b)?;
    }
    out.finish(&incoming.schema)?;
    wrote(a, rows);
    Ok(Reply::Answer(ExitCode::SUCCESS))
}

/// Where a whole answer goes: `--out FILE`, or JSON or CSV on standard
/// output; `None` for a table (the first rows, printed).
fn sink(
    settings: &Settings,
    a: &SqlArgs,
    schema: &SchemaRef,
) -> Result<Option<AnswerOut<'static>>> {
    let stdout =
        || -> Box<dyn Write> { Box::new(std::io::BufWriter::new(std::io::stdout().lock())) };
    Ok(match (&a.out, settings.output) {
        (Some(path), _) => Some(file_out(path, schema)?),
        (None, Output::Json) => Some(AnswerOut::Json(JsonOut::new(stdout(), false))),
        (None, Output::Csv) => Some(AnswerOut::Csv(CsvOut::new(stdout()))),
        (None, Output::Table) => None,
    })
}

/// Says where `--out` wrote.
fn wrote(a: &SqlArgs, rows: u64) {
    if let Some(path) = &a.out {
        eprintln!("wrote {rows} rows to {}", path.display());
    }
}

/// The first rows as aligned columns, then how many more there were, how
/// long it took, which table versions were read and, when a server
/// answered, which.
fn print_answer(answer: &Answer, by: Option<&str>) -> Result<()> {
    let headers: Vec<String> = answer
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    output::table(&headers, &encode::cells(&answer.batches)?);
    let more = answer.rows - answer.kept();
    if more > 0 {
        println!(
            "… {more} more row{} (--max-rows N shows more; -o csv or --out FILE gives all)",
            if more == 1 { "" } else { "s" }
        );
    }
    for m in &answer.made_of {
        println!("{m}");
    }
    let read: Vec<String> = answer
        .tables
        .iter()
        .map(|(t, v)| format!("{t} v{v}"))
        .collect();
    println!(
        "({} row{} in {:.3}s{}{})",
        answer.rows,
        if answer.rows == 1 { "" } else { "s" },
        answer.elapsed.as_secs_f64(),
        if read.is_empty() {
            String::new()
        } else {
            format!("; read {}", read.join(", "))
        },
        by.map(|u| format!("; answered by the server at {u}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// The query and where it came from (for error places).
fn query_text(a: &SqlArgs) -> Result<(String, String)> {
    if let Some(q) = &a.query {
        return Ok(("<query>".to_string(), q.clone()));
    }
    if let Some(f) = &a.file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the query file {}", f.display()))?;
        return Ok((f.display().to_string(), text));
    }
    if std::io::stdin().is_terminal() {
        bail!("no query: give it as an argument, with -f FILE, or on standard input");
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the query from standard input")?;
    Ok(("<stdin>".to_string(), text))
}

/// The writer of `--out FILE`; the extension picks the format.
fn file_out(path: &Path, schema: &SchemaRef) -> Result<AnswerOut<'static>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let file = || -> Result<Box<dyn Write>> {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Box::new(std::io::BufWriter::new(f)))
    };
    Ok(match ext.as_str() {
        "parquet" => AnswerOut::Parquet(ParquetOut::create(path, schema)?),
        "csv" => AnswerOut::Csv(CsvOut::new(file()?)),
        "json" | "jsonl" | "ndjson" => AnswerOut::Json(JsonOut::new(file()?, true)),
        other => bail!(
            "--out {}: unknown file type {other:?}; use .parquet, .csv or .json",
            path.display()
        ),
    })
}

fn fail(source: &str) -> impl Fn(SqlError) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!(e.render(source))
}

fn lake_err(e: lake::LakeError) -> SqlError {
    SqlError::execution(e.to_string())
}
