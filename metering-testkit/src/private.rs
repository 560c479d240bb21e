//! Throwaway servers of a test's own, for tests that stop, kill or restart a backend: each
//! on a free loopback port in a temporary directory, so nothing touches the shared servers.
//! Where the programs are missing, `start` prints `SKIPPED` on a machine without configured
//! backend tests (a newcomer's laptop) and fails with how to install them where the backend
//! tests are configured (CI).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A throwaway PostgreSQL server of its own (`initdb` in a temporary directory, a free port),
/// so a test can stop and start it without touching any other server. Stopped and deleted
/// when dropped. As root, the server runs as the `postgres` user (PostgreSQL refuses root).
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// Starts one; `None` (with the reason printed) where PostgreSQL's server programs are not
    /// installed, unless the backend tests are configured (CI), where that is a failure.
    pub fn start() -> Option<Self> {
        let Some(bin) = Self::bin_dir() else {
            assert!(
                crate::postgres_url().is_none(),
                "METERING_TEST_POSTGRES_URL is set, but no PostgreSQL server programs (initdb, \
                 pg_ctl) were found under /usr/lib/postgresql/*/bin or on PATH; install the PostgreSQL \
                 server (e.g. `apt-get install postgresql`)"
            );
            println!("SKIPPED restart: PostgreSQL's initdb and pg_ctl are not installed");
            return None;
        };
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the data directory to postgres");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = PrivatePostgres {
            bin,
            dir,
            port,
            as_postgres,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        server.pg_ctl(&["start"]);
        Some(server)
    }

    fn bin_dir() -> Option<std::path::PathBuf> {
        let mut candidates: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .collect();
        candidates.sort();
        candidates.reverse();
        candidates.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        candidates
            .into_iter()
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// The server's URL (database `postgres`, user `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl` on this server's data directory, waiting for the action to finish (e.g.
    /// `["-m", "fast", "restart"]`).
    pub fn pg_ctl(&self, args: &[&str]) {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut all = vec!["-D", &data, "-l", &log, "-o", &options, "-w"];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// A command running `program`, as the `postgres` user when this process is root.
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self
            .command(program)
            .args(args)
            .output()
            .expect("a PostgreSQL program runs");
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A private Redis server.
#[derive(Debug)]
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    extra_args: Vec<String>,
}

impl PrivateRedis {
    /// Starts one; `None` (with the reason printed) where `redis-server` is not installed,
    /// unless the backend tests are configured (CI), where that is a failure.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// As [`PrivateRedis::start`], with more `redis-server` options.
    pub fn start_with(extra_args: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                crate::redis_url().is_none(),
                "METERING_TEST_REDIS_URL is set, but `redis-server` is not on PATH (install \
                 Redis, e.g. `apt-get install redis-server`)"
            );
            println!("SKIPPED private redis: `redis-server` is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = PrivateRedis {
            dir: tempfile::tempdir().expect("a temporary directory"),
            port,
            child: None,
            extra_args: extra_args.iter().map(|&a| a.to_owned()).collect(),
        };
        server.start_again();
        Some(server)
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (empty: nothing is persisted) and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(self.dir.path())
            .args(&self.extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `redis-cli` against this server; its standard output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs (it comes with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private Redis Cluster: three primaries with one replica each, on six free loopback
/// ports, with a 1 s node timeout so a failover takes a few seconds. Killed when dropped.
#[derive(Debug)]
pub struct PrivateRedisCluster {
    nodes: Vec<PrivateRedis>,
}

impl PrivateRedisCluster {
    /// Starts one and waits until every slot is served; `None` as for [`PrivateRedis`].
    pub fn start() -> Option<Self> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(PrivateRedis::start_with(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ])?);
        }
        let mut create = vec!["--cluster".to_owned(), "create".to_owned()];
        create.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        create.extend(["--cluster-replicas", "1", "--cluster-yes"].map(str::to_owned));
        let create: Vec<&str> = create.iter().map(String::as_str).collect();
        nodes[0].cli(&create);
        let cluster = PrivateRedisCluster { nodes };
        cluster.wait_until_served(Duration::from_secs(30));
        // And until every primary's replica has synced (writes confirmed by `WAIT` need it).
        cluster.wait_for_replicas(Duration::from_secs(30));
        Some(cluster)
    }

    /// The `redis+cluster://` URL naming every node.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// The nodes, in the order they were created (the first three start as primaries).
    pub fn nodes(&self) -> &[PrivateRedis] {
        &self.nodes
    }

    /// The index of the node serving `key` now, asked of a running node; `None` while no
    /// healthy primary serves it (during a failover).
    pub fn primary_of(&self, key: &str) -> Option<usize> {
        let asker = self.running().next().expect("a running node");
        let slot: u16 = asker
            .cli(&["cluster", "keyslot", key])
            .trim()
            .parse()
            .expect("a slot number");
        for line in asker.cli(&["cluster", "nodes"]).lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let serves = fields[8..].iter().any(|range| {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                match (start.parse::<u16>(), end.parse::<u16>()) {
                    (Ok(start), Ok(end)) => (start..=end).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                let port: u16 = fields[1]
                    .split(['@', ':'])
                    .nth(1)
                    .and_then(|p| p.parse().ok())
                    .expect("host:port@bus");
                return self.nodes.iter().position(|n| n.port == port);
            }
        }
        None
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again; it rejoins the cluster (as a replica, if it was failed over).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].start_again();
    }

    /// Waits until another node serves `key` in place of node `was`, with every slot served.
    pub fn wait_for_failover(&self, key: &str, was: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.primary_of(key).is_none_or(|now| now == was) {
            assert!(
                Instant::now() < deadline,
                "no replica took over from node {was} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait_until_served(deadline.saturating_duration_since(Instant::now()));
    }

    /// Waits until every running primary has an online replica.
    pub fn wait_for_replicas(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.running().all(|n| {
            let info = n.cli(&["info", "replication"]);
            !info.contains("role:master")
                || (!info.contains("connected_slaves:0") && info.contains("state=online"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the replicas did not sync within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until every running node reports `cluster_state:ok`, with every slot served.
    pub fn wait_until_served(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ok = self.running().all(|n| {
                let info = n.cli(&["cluster", "info"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not serve every slot within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn running(&self) -> impl Iterator<Item = &PrivateRedis> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }
}
