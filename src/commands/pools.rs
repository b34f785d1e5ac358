//! `tributary pools`: named slot limits shared by tasks.

use std::process::ExitCode;

use anyhow::{Result, bail};
use scheduler::model::PoolRecord;
use serde_json::{Value, json};

use crate::cli::PoolsCommand;
use crate::output;
use crate::settings::Settings;

/// `pools …`.
pub async fn run(settings: &Settings, c: &PoolsCommand) -> Result<ExitCode> {
    let store = settings.store().await?;
    match c {
        PoolsCommand::List => {
            let usage = store.slot_usage().await?;
            let pools = store.list_pools().await?;
            if settings.json() {
                let v: Vec<Value> = pools
                    .iter()
                    .map(|p| json!({"name": p.name, "slots": p.slots, "used": usage.by_pool.get(&p.name).copied().unwrap_or(0), "description": p.description}))
                    .collect();
                output::json(&v)?;
            } else {
                let rows: Vec<Vec<String>> = pools
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.slots.to_string(),
                            usage.by_pool.get(&p.name).copied().unwrap_or(0).to_string(),
                            p.description.clone(),
                        ]
                    })
                    .collect();
                output::table(&["POOL", "SLOTS", "USED", "DESCRIPTION"], &rows);
            }
        }
        PoolsCommand::Set {
            name,
            slots,
            description,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                bail!("invalid pool name {name:?}: use letters, digits, '_', '-' or '.'");
            }
            store
                .set_pool(&PoolRecord {
                    name: name.clone(),
                    slots: i64::from(*slots),
                    description: description.clone(),
                })
                .await?;
            store.notify().await?;
            println!("pool {name} has {slots} slot(s)");
        }
        PoolsCommand::Delete { name } => {
            if !store.delete_pool(name).await? {
                bail!("pool {name:?} not found");
            }
            println!("pool {name} deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}
