//! The schema: creating the configured PostgreSQL schema and applying the migrations embedded
//! in this crate.

use metering_core::Result;
use sqlx::{Executor, PgPool};

use crate::error::{PgError, db};

/// The migrations embedded in this crate.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `name` quoted as a PostgreSQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates `schema` when one is configured and it is missing.
pub(crate) async fn create_schema(pool: &PgPool, schema: Option<&str>) -> Result<()> {
    if let Some(schema) = schema {
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema));
        match pool.execute(sql.as_str()).await {
            Ok(_) => {}
            // Two stores creating the same schema at once: the loser sees a unique
            // violation on the catalog, and the schema exists.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(db(e)),
        }
    }
    Ok(())
}

/// Applies the embedded migrations; sqlx holds an advisory lock while it migrates.
pub(crate) async fn migrate(pool: &PgPool) -> Result<()> {
    MIGRATOR.run(pool).await.map_err(PgError::from)?;
    Ok(())
}
