//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

mod slow_store;
#[allow(unused_imports)]
pub use slow_store::SlowStore;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metering_store_redis::redis::AsyncCommands;
use metering_store_redis::{RedisConfig, RedisQuotaCache, redis};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A key prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("metering-test:{:016x}:", rand::random::<u64>())
}

/// A cache on the test server with a fresh key prefix, or `None` (SKIPPED) without one.
/// Panics, printing the URL, when the server is configured but does not answer.
pub async fn cache() -> Option<RedisQuotaCache> {
    let url = metering_testkit::redis_url()?;
    Some(cache_at(&url, &unique_prefix()).await)
}

/// A cache on `url` under `prefix`, checked to answer.
pub async fn cache_at(url: &str, prefix: &str) -> RedisQuotaCache {
    let cache = RedisQuotaCache::open(RedisConfig::default().with_url(url).with_key_prefix(prefix))
        .await
        .expect("a valid redis URL");
    if let Err(e) = metering_core::QuotaCache::health(&cache).await {
        panic!(
            "redis at {} does not answer: {e}",
            metering_testkit::env::redact(url)
        );
    }
    cache
}

/// A plain connection to the test server, for poking at keys behind the cache's back.
pub async fn raw_connection(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("valid url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis answers")
}

/// Every key under `prefix` matching `rest` (a glob).
pub async fn keys(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    conn.keys(pattern).await.expect("KEYS")
}

/// A TCP proxy in front of Redis that the test can cut and restore, to simulate an outage
/// for one process only.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub url: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    /// Starts forwarding a local port to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let proxy = Proxy {
            url: format!("redis://127.0.0.1:{port}"),
            up: up.clone(),
            cut: cut.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_rx = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// `host:port` of a `redis://host:port[/db]` URL without credentials.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest).to_owned()
}
