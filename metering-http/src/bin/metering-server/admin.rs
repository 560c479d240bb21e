//! The admin commands (`keys`, `quotas`, `meters`) and the first-start admin key.

use anyhow::Context as _;
use clap::Subcommand;
use metering_core::api::{ApiKeyList, CreatedApiKeyBody, MeterList, QuotaList};
use metering_core::{
    ApiKeyId, Error, LastAdmin, MeterKey, MeterSpec, Metering, NewApiKey, QuotaId, QuotaScope,
    QuotaSpec, Role,
};
use serde_json::json;

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print it (the secret is shown only this once).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
        /// admin, ingest or read.
        #[arg(long)]
        role: String,
        /// Scope the key to one tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// When it stops working (RFC 3339).
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List keys (without secrets).
    List,
    /// Revoke a key by id; it stops working at once. The last active admin key is kept
    /// unless `--force` is given.
    Revoke {
        /// The key's id.
        id: String,
        /// Revoke it even when it is the last active admin key (recovery on the host; create
        /// a new admin key with `keys create --role admin` afterwards).
        #[arg(long)]
        force: bool,
    },
}

/// `quotas` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum QuotasCommand {
    /// Create or replace the quota of (tenant, resource, feature), or of (tenant, meter).
    Set {
        /// A tenant id, or `*` for the default of every tenant.
        #[arg(long)]
        tenant: String,
        /// Limit usage in this resource only (default: any resource).
        #[arg(long, conflicts_with = "meter")]
        resource: Option<String>,
        /// The feature whose usage is limited.
        #[arg(long, required_unless_present = "meter", conflicts_with = "meter")]
        feature: Option<String>,
        /// Limit the value of this meter instead (a sum, count or unique_count meter).
        #[arg(long)]
        meter: Option<String>,
        /// Most usage per period (> 0, decimals allowed).
        #[arg(long)]
        limit: String,
        /// hourly, daily, monthly or yearly.
        #[arg(long)]
        period: String,
        /// Percent of the limit at which `alert` turns true (default 80).
        #[arg(long)]
        alert_threshold: Option<u8>,
        /// IANA zone of the period boundaries (default UTC).
        #[arg(long)]
        tz: Option<String>,
    },
    /// List quotas, all or one tenant's.
    List {
        /// A tenant id, or `*` for the defaults.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Delete a quota by id.
    Delete {
        /// The quota's id.
        id: String,
    },
}

/// `meters` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum MetersCommand {
    /// Create or replace a meter, from a JSON definition (`--json`) or from flags.
    Set {
        /// The meter's key: 1 to 64 characters of a-z, 0-9, `_` and `-`.
        key: String,
        /// The whole definition as JSON, as `PUT /v1/meter/meters/{key}` takes it.
        #[arg(long, conflicts_with_all = ["aggregation", "value", "name", "resource", "feature", "metadata", "dimension"])]
        json: Option<String>,
        /// sum, count, unique_count, min, max, avg or latest.
        #[arg(long, required_unless_present = "json")]
        aggregation: Option<String>,
        /// `quantity` (default) or `metadata.<key>[.<key>...]`.
        #[arg(long)]
        value: Option<String>,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// Count only this resource (repeat for any of several).
        #[arg(long)]
        resource: Vec<String>,
        /// Count only this feature (repeat for any of several).
        #[arg(long)]
        feature: Vec<String>,
        /// Count only events whose metadata key has this JSON value: `region="eu"`, `tier=2`
        /// (repeat the key for any of several values).
        #[arg(long, value_name = "KEY=JSON")]
        metadata: Vec<String>,
        /// A metadata key that queries may group by and filter on (repeat, at most 8).
        #[arg(long)]
        dimension: Vec<String>,
    },
    /// List meters.
    List,
    /// Delete a meter by key.
    Delete {
        /// The meter's key.
        key: String,
    },
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Runs a `keys` command.
pub(crate) async fn keys(engine: &Metering, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            role,
            tenant,
            expires_at,
        } => {
            let body =
                json!({"name": name, "role": role, "tenant_id": tenant, "expires_at": expires_at});
            let new = NewApiKey::from_json(&body).map_err(describe)?;
            let created = engine.create_api_key(new).await.map_err(describe)?;
            print_json(&CreatedApiKeyBody::from(created))
        }
        KeysCommand::List => print_json(&ApiKeyList {
            api_keys: engine.list_api_keys().await?,
        }),
        KeysCommand::Revoke { id, force } => {
            let id: ApiKeyId = id.parse().context("the id must be a UUID")?;
            let last_admin = if force {
                LastAdmin::Allow
            } else {
                LastAdmin::Keep
            };
            engine
                .revoke_api_key(id, last_admin)
                .await
                .map_err(describe)?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

/// Runs a `quotas` command.
pub(crate) async fn quotas(engine: &Metering, command: QuotasCommand) -> anyhow::Result<()> {
    match command {
        QuotasCommand::Set {
            tenant,
            resource,
            feature,
            meter,
            limit,
            period,
            alert_threshold,
            tz,
        } => {
            // The limit goes through as text so decimals stay exact.
            let mut body = json!({"tenant_id": tenant, "resource": resource, "feature": feature,
                "limit": limit, "period": period, "alert_threshold": alert_threshold, "tz": tz});
            if let Some(meter) = meter {
                body["meter"] = meter.into();
            }
            let body = serde_json::value::to_raw_value(&body)?;
            let spec = QuotaSpec::from_json(&body).map_err(describe)?;
            print_json(&engine.upsert_quota(spec).await.map_err(describe)?)
        }
        QuotasCommand::List { tenant } => {
            let scope = tenant
                .map(|t| QuotaScope::parse(&t).map_err(anyhow::Error::msg))
                .transpose()?;
            print_json(&QuotaList {
                quotas: engine.list_quotas(scope.as_ref()).await?,
            })
        }
        QuotasCommand::Delete { id } => {
            let id: QuotaId = id.parse().context("the id must be a UUID")?;
            engine.delete_quota(id).await.map_err(describe)?;
            println!("deleted {id}");
            Ok(())
        }
    }
}

/// Runs a `meters` command.
pub(crate) async fn meters(engine: &Metering, command: MetersCommand) -> anyhow::Result<()> {
    match command {
        MetersCommand::Set {
            key,
            json,
            aggregation,
            value,
            name,
            resource,
            feature,
            metadata,
            dimension,
        } => {
            let key = MeterKey::new(key).map_err(|e| anyhow::anyhow!("invalid key: {e}"))?;
            let body = match json {
                Some(text) => text,
                None => {
                    let mut conditions = serde_json::Map::new();
                    for condition in metadata {
                        let (name, value) = condition
                            .split_once('=')
                            .context("--metadata takes KEY=JSON, e.g. region=\"eu\"")?;
                        let value: serde_json::Value =
                            serde_json::from_str(value).with_context(|| {
                                format!("--metadata {name}: the value must be JSON")
                            })?;
                        let slot = conditions
                            .entry(name.to_owned())
                            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                        if let serde_json::Value::Array(values) = slot {
                            values.push(value);
                        }
                    }
                    let mut filter = serde_json::Map::new();
                    if !resource.is_empty() {
                        filter.insert("resource".into(), json!(resource));
                    }
                    if !feature.is_empty() {
                        filter.insert("feature".into(), json!(feature));
                    }
                    if !conditions.is_empty() {
                        filter.insert("metadata".into(), conditions.into());
                    }
                    json!({"name": name, "aggregation": aggregation, "value": value,
                           "filter": filter, "dimensions": dimension})
                    .to_string()
                }
            };
            let raw: Box<serde_json::value::RawValue> =
                serde_json::from_str(&body).context("the definition is not valid JSON")?;
            let spec = MeterSpec::from_json(&raw).map_err(describe)?;
            print_json(&engine.define_meter(&key, &spec).await.map_err(describe)?)
        }
        MetersCommand::List => print_json(&MeterList {
            meters: engine.list_meters().await?,
        }),
        MetersCommand::Delete { key } => {
            let key = MeterKey::new(key).map_err(|e| anyhow::anyhow!("invalid key: {e}"))?;
            engine.delete_meter(&key).await.map_err(describe)?;
            println!("deleted {key}");
            Ok(())
        }
    }
}

/// A core error as a message naming every bad field.
fn describe(error: Error) -> anyhow::Error {
    match error {
        Error::Validation(errors) => anyhow::anyhow!(
            "invalid input:\n{}",
            errors
                .errors()
                .iter()
                .map(|e| format!("  {}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        other => anyhow::Error::new(other),
    }
}

/// Makes sure an admin can get in: imports `METERING_ADMIN_KEY` when set, else creates an
/// admin key on first start (no keys at all) and prints it once to stdout. Secrets are never
/// logged.
pub(crate) async fn ensure_admin_key(engine: &Metering) -> anyhow::Result<()> {
    let preset = std::env::var("METERING_ADMIN_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let Some(secret) = preset else {
        if engine.has_api_keys().await? {
            return Ok(());
        }
        let created = engine
            .create_api_key(NewApiKey::new("admin", Role::Admin))
            .await?;
        println!("Created an admin API key. It is shown only this once; keep it now:");
        println!();
        println!("    {}", created.secret);
        println!();
        tracing::info!(id = %created.key.id, prefix = %created.key.prefix, "created the first admin key");
        return Ok(());
    };
    let secret = secret.trim();
    match engine.authenticate(secret).await {
        Ok(principal) if principal.key.role == Role::Admin => return Ok(()),
        Ok(_) => {
            tracing::warn!("METERING_ADMIN_KEY is a known key without the admin role; left as is");
            return Ok(());
        }
        Err(Error::Unauthenticated(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match engine
        .import_api_key(
            NewApiKey::new("admin (METERING_ADMIN_KEY)", Role::Admin),
            secret,
        )
        .await
    {
        Ok(created) => {
            tracing::info!(id = %created.key.id, prefix = %created.key.prefix, "imported METERING_ADMIN_KEY as an admin key");
            Ok(())
        }
        // Another instance sharing the store imported it at the same moment, or the key
        // was revoked (a revoked key is never brought back).
        Err(Error::Conflict(_)) => {
            if engine.authenticate(secret).await.is_err() {
                tracing::warn!(
                    "METERING_ADMIN_KEY matches a revoked or expired key; not re-created"
                );
            }
            Ok(())
        }
        Err(e) => Err(describe(e).context("importing METERING_ADMIN_KEY")),
    }
}
