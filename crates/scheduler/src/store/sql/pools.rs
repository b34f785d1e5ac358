//! Pools: named slot limits.

use sqlx::Row;

use crate::model::PoolRecord;
use crate::{Error, Result};

use super::connection::SqlStore;

pub(super) async fn list_pools(store: &SqlStore) -> Result<Vec<PoolRecord>> {
    let rows = sqlx::query("SELECT name, slots, description FROM pools ORDER BY name")
        .fetch_all(&store.pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(PoolRecord {
                name: r.try_get("name")?,
                slots: r.try_get("slots")?,
                description: r.try_get("description")?,
            })
        })
        .collect()
}

pub(super) async fn set_pool(store: &SqlStore, pool: &PoolRecord) -> Result<()> {
    if pool.slots < 0 {
        return Err(Error::Invalid(format!(
            "pool {:?}: slots must be 0 or more, got {}",
            pool.name, pool.slots
        )));
    }
    sqlx::query(
        "INSERT INTO pools (name, slots, description) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description",
    )
    .bind(&pool.name)
    .bind(pool.slots)
    .bind(&pool.description)
    .execute(&store.pool)
    .await?;
    Ok(())
}

pub(super) async fn delete_pool(store: &SqlStore, name: &str) -> Result<bool> {
    if name == crate::dag::parse::DEFAULT_POOL {
        return Err(Error::Invalid(
            "the default_pool cannot be deleted (set its slots instead)".into(),
        ));
    }
    let r = sqlx::query("DELETE FROM pools WHERE name = $1")
        .bind(name)
        .execute(&store.pool)
        .await?;
    Ok(r.rows_affected() == 1)
}
