//! One connection type over a standalone server and a Redis Cluster.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, RedisResult, ScriptInvocation, Value};

use crate::config::{RedisConfig, Topology};

/// A multiplexed connection (cheap to clone) that reconnects by itself.
#[derive(Clone)]
pub(crate) enum Connection {
    /// One server (or a primary with replicas behind one address).
    Standalone(ConnectionManager),
    /// A Redis Cluster: each command goes to the primary of its keys' hash slot.
    Cluster(ClusterConnection),
}

impl Connection {
    /// Opens a connection lazily: nothing is sent before the first call.
    pub(crate) fn open(config: &RedisConfig) -> RedisResult<Connection> {
        match config.topology()? {
            Topology::Standalone(url) => {
                let client = redis::Client::open(url)?;
                let manager = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    // One attempt per call: a caller waits at most one timeout, then falls back.
                    .set_number_of_retries(0);
                Ok(Connection::Standalone(
                    ConnectionManager::new_lazy_with_config(client, manager)?,
                ))
            }
            Topology::Cluster(nodes) => {
                let client = ClusterClient::builder(nodes)
                    // Follow a redirect or a failover a few times within the caller's timeout.
                    .retries(3)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()?;
                let cluster = ClusterConfig::new()
                    .set_connection_timeout(config.connect_timeout)
                    .set_response_timeout(config.response_timeout);
                Ok(Connection::Cluster(
                    client.get_pending_async_connection_with_config(cluster),
                ))
            }
        }
    }

    /// Whether keys of different hash slots must go in different calls.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }

    /// Runs a script (loading it first where the server lacks it).
    pub(crate) async fn invoke<T: FromRedisValue>(
        &mut self,
        call: &ScriptInvocation<'_>,
    ) -> RedisResult<T> {
        match self {
            Connection::Standalone(c) => call.invoke_async(c).await,
            Connection::Cluster(c) => call.invoke_async(c).await,
        }
    }

    /// `WAIT`s on the primary that holds `key` until `replicas` replicas have every write sent
    /// to it so far over this connection; the number that have.
    pub(crate) async fn wait(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> RedisResult<i64> {
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(replicas).arg(timeout_ms.max(1));
        let value = match self {
            Connection::Standalone(c) => cmd.query_async(c).await?,
            Connection::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                c.route_command(
                    cmd,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await?
            }
        };
        match value {
            Value::Int(n) => Ok(n),
            other => Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "WAIT",
                format!("{other:?}"),
            ))),
        }
    }

    /// Deletes keys (on a cluster, each at the primary of its slot).
    pub(crate) async fn del(&mut self, keys: &[String]) -> RedisResult<()> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(keys);
        match self {
            Connection::Standalone(c) => cmd.query_async(c).await,
            Connection::Cluster(c) => cmd.query_async(c).await,
        }
    }

    /// Deletes every key matching the `SCAN` pattern (on every primary of a cluster).
    pub(crate) async fn drop_matching(&mut self, pattern: &str) -> RedisResult<()> {
        let nodes = match self {
            Connection::Standalone(_) => vec![None],
            Connection::Cluster(c) => primaries(c).await?.into_iter().map(Some).collect(),
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, keys): (u64, Vec<String>) = match (&mut *self, &node) {
                    (Connection::Standalone(c), _) => scan.query_async(c).await?,
                    (Connection::Cluster(c), Some((host, port))) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        });
                        let value = c.route_command(scan, routing).await?;
                        <(u64, Vec<String>)>::from_redis_value(value)?
                    }
                    (Connection::Cluster(_), None) => unreachable!("a cluster lists its nodes"),
                };
                if !keys.is_empty() {
                    self.del(&keys).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// `PING`s the server, or every node of a cluster.
    pub(crate) async fn ping(&mut self) -> RedisResult<()> {
        let cmd = redis::cmd("PING");
        match self {
            Connection::Standalone(c) => cmd.query_async(c).await,
            Connection::Cluster(c) => cmd.query_async(c).await,
        }
    }
}

/// The address of every primary of the cluster, from `CLUSTER SLOTS`.
async fn primaries(cluster: &mut ClusterConnection) -> RedisResult<Vec<(String, u16)>> {
    let slots = cluster
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    // Each range: [start, end, [host, port, id, ...], replicas...].
    let ranges: Vec<Vec<Value>> = FromRedisValue::from_redis_value(slots)?;
    let mut nodes = Vec::new();
    for range in ranges {
        let Some(Value::Array(primary)) = range.into_iter().nth(2) else {
            continue;
        };
        let mut parts = primary.into_iter();
        let (Some(host), Some(port)) = (parts.next(), parts.next()) else {
            continue;
        };
        let node = (
            String::from_redis_value(host)?,
            u16::from_redis_value(port)?,
        );
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    Ok(nodes)
}
