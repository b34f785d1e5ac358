//! `tributary dev`: the development servers (an in-memory Kafka broker and
//! the offline random-user API), each until Ctrl-C.

use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use tasks::dev::random_user_api::{Fault, Faults, OfflineApiConfig};

use crate::cli::DevCommand;

/// `dev …`.
pub async fn run(c: &DevCommand) -> Result<ExitCode> {
    match c {
        DevCommand::Kafka { topics } => kafka(topics).await,
        DevCommand::RandomUserApi {
            bind,
            fixtures,
            fault,
            fault_first,
            fault_every,
        } => {
            let faults = faults(fault.as_deref(), *fault_first, *fault_every)?;
            let mut cfg = OfflineApiConfig {
                faults,
                ..OfflineApiConfig::default()
            };
            if let Some(dir) = fixtures {
                cfg = cfg
                    .with_fixtures(dir)
                    .map_err(|e| anyhow!("--fixtures: {e}"))?;
            }
            let stop = crate::shutdown::on_signals();
            let api = tasks::dev::random_user_api::start(*bind, cfg, stop.clone())
                .await
                .with_context(|| format!("cannot listen on {bind}"))?;
            println!(
                "offline random-user API on {} (format 1.4; Ctrl-C to stop)",
                api.url()
            );
            println!("try: curl '{}?results=3&seed=demo&nat=fr'", api.url());
            stop.cancelled().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn kafka(topics: &[String]) -> Result<ExitCode> {
    let mut parsed = Vec::new();
    for t in topics {
        let (name, parts) = t.split_once(':').unwrap_or((t.as_str(), "4"));
        let n: i32 = parts.parse().ok().filter(|n| *n > 0).with_context(|| {
            format!("--topic {t:?}: write NAME:PARTITIONS with at least 1 partition")
        })?;
        parsed.push((name, n));
    }
    let broker = tasks::dev::DevBroker::start(&parsed).map_err(|e| anyhow!(e))?;
    println!(
        "Kafka dev broker on {} (in-memory, for development: about 5 MB per partition, gone on exit)",
        broker.bootstrap_servers()
    );
    println!(
        "use it with: TRIBUTARY_KAFKA_BOOTSTRAP={} tributary scheduler",
        broker.bootstrap_servers()
    );
    crate::shutdown::on_signals().cancelled().await;
    drop(broker);
    Ok(ExitCode::SUCCESS)
}

/// `--fault`, `--fault-first`, `--fault-every` as the server's fault plan:
/// a fault alone applies to every request.
fn faults(fault: Option<&str>, first: u64, every: Option<u64>) -> Result<Faults> {
    let fault: Option<Fault> = match fault {
        Some(f) => Some(f.parse().map_err(|e: String| anyhow!("--fault: {e}"))?),
        None => None,
    };
    if fault.is_none() && (first > 0 || every.is_some()) {
        bail!("--fault-first and --fault-every need --fault");
    }
    Ok(Faults {
        fault,
        first: if fault.is_some() && every.is_none() && first == 0 {
            u64::MAX
        } else {
            first
        },
        every,
    })
}
