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
}

impl PrivateRedis {
    /// Starts one; `None` (with the reason printed) where `redis-server` is not installed,
    /// unless the backend tests are configured (CI), where that is a failure.
    pub fn start() -> Option<Self> {
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
