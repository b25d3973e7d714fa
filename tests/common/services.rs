//! The shared services of a test binary: a Redis and a ClickHouse server
//! on loopback ports, and a proxy that drops an INSERT's answer (the
//! shipper's unknown-outcome fault).

use super::*;

/// A Redis server.
pub struct Redis {
    pub port: u16,
    pub(super) child: Child,
    pub(super) dir: Option<tempfile::TempDir>,
}

impl Redis {
    /// Starts redis-server on a free port.
    pub fn start() -> Redis {
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::tempdir().unwrap();
            match Redis::try_start(free_port(), dir) {
                Ok(r) => return r,
                Err(_) => continue,
            }
        }
        panic!("redis-server lost its port {START_ATTEMPTS} times in a row");
    }

    /// Starts redis-server on `port` with its data in `dir`: a restart on
    /// the same port (trackedge knows no other) and the same dir loads what
    /// [`Redis::save_and_kill`] wrote.
    pub fn start_in(port: u16, dir: tempfile::TempDir) -> Redis {
        Redis::try_start(port, dir)
            .unwrap_or_else(|_| panic!("another process took port {port} while redis was down"))
    }

    /// Starts redis-server; gives `dir` back if `port` was taken.
    fn try_start(port: u16, dir: tempfile::TempDir) -> Result<Redis, tempfile::TempDir> {
        let logfile = dir.path().join("redis.log");
        let mut child = spawn_tied(
            Command::new(find_binary("redis-server"))
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&logfile)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let url = format!("redis://127.0.0.1:{port}");
        let started = await_start(
            "redis-server",
            &mut child,
            &[port],
            &|| std::fs::read_to_string(&logfile).unwrap_or_default(),
            &address_in_use,
            // PING fails while a restart is still loading its data.
            &|| ping(&url),
        );
        match started {
            Started::Listening => Ok(Redis {
                port,
                child,
                dir: Some(dir),
            }),
            Started::PortTaken => Err(dir),
        }
    }

    /// Snapshots the data to disk (SAVE), kills the server, and hands back
    /// its port and data dir for a restart.
    pub fn save_and_kill(mut self) -> (u16, tempfile::TempDir) {
        let reply: String = redis::cmd("SAVE")
            .query(&mut self.connection())
            .expect("redis SAVE");
        assert_eq!(reply, "OK");
        self.kill();
        (self.port, self.dir.take().expect("the data dir"))
    }

    /// A new connection.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connecting to redis")
    }

    /// The URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// True when it answers PING.
    pub fn ping(&self) -> bool {
        ping(&self.url())
    }

    /// Kills it (SIGKILL) and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when the Redis at `url` answers PING.
fn ping(url: &str) -> bool {
    let Ok(mut conn) = redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
    else {
        return false;
    };
    redis::cmd("PING")
        .query::<String>(&mut conn)
        .is_ok_and(|r| r == "PONG")
}

/// A ClickHouse server.
pub struct ClickHouse {
    pub http_port: u16,
    /// The TCP and interserver ports, which must also be its own.
    pub(super) other_ports: [u16; 2],
    pub(super) child: Option<Child>,
    pub(super) dir: tempfile::TempDir,
}

impl ClickHouse {
    /// Starts a private clickhouse-server on free ports.
    pub fn start() -> ClickHouse {
        for _ in 0..START_ATTEMPTS {
            let [http, tcp, inter] = free_ports();
            let dir = tempfile::tempdir().unwrap();
            let status = Command::new("bash")
                .arg(repo_root().join("scripts/clickhouse-config.sh"))
                .arg(dir.path())
                .args([http.to_string(), tcp.to_string(), inter.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "scripts/clickhouse-config.sh failed");
            let mut ch = ClickHouse {
                http_port: http,
                other_ports: [tcp, inter],
                child: None,
                dir,
            };
            if let Started::Listening = ch.spawn() {
                return ch;
            }
        }
        panic!("clickhouse-server lost one of its ports {START_ATTEMPTS} times in a row");
    }

    /// (Re)starts the server process on the same ports and data, and waits
    /// until it answers.
    pub fn restart(&mut self) {
        if let Started::PortTaken = self.spawn() {
            panic!(
                "another process took a port of clickhouse ({}, {:?}) while it was down",
                self.http_port, self.other_ports
            );
        }
    }

    /// Starts the process and waits until it answers /ping or exits.
    fn spawn(&mut self) -> Started {
        assert!(self.child.is_none(), "already running");
        let mut child = spawn_tied(
            Command::new(find_binary("clickhouse-server"))
                .arg(format!(
                    "--config-file={}",
                    self.dir.path().join("config.xml").display()
                ))
                .current_dir(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let err_log = self.dir.path().join("log/clickhouse-server.err.log");
        let ports = [self.http_port, self.other_ports[0], self.other_ports[1]];
        let started = await_start(
            "clickhouse-server",
            &mut child,
            &ports,
            &|| std::fs::read_to_string(&err_log).unwrap_or_default(),
            &address_in_use,
            &|| self.ping(),
        );
        self.child = Some(child);
        if let Started::PortTaken = started {
            self.kill();
        }
        started
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// True when /ping answers.
    pub fn ping(&self) -> bool {
        http_get_blocking(&format!("{}/ping", self.url()))
            .is_some_and(|(s, b)| s == 200 && b.starts_with("Ok."))
    }

    /// Runs `sql`, returning TSV output. A query on a table or database
    /// that does not exist yet (Code 60 or 81: a migration still running)
    /// is retried until it does; any other error fails the test.
    pub fn query(&self, sql: &str) -> String {
        wait_for(&format!("the tables of {sql}"), || {
            match self.try_query(sql) {
                Ok(out) => Some(out),
                Err(e) if e.contains("Code: 60") || e.contains("Code: 81") => None,
                Err(e) => panic!("query {sql} failed: {e}"),
            }
        })
    }

    /// Runs `sql`: its TSV output, or the error ClickHouse answered.
    pub fn try_query(&self, sql: &str) -> Result<String, String> {
        let (status, body) = http_post_blocking(&format!("{}/", self.url()), sql)
            .unwrap_or_else(|| panic!("clickhouse unreachable for {sql}"));
        if status == 200 {
            Ok(body)
        } else {
            Err(body)
        }
    }

    /// Runs `sql` expecting one number.
    pub fn count(&self, sql: &str) -> u64 {
        let out = self.query(sql);
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("not a number from {sql}: {out}"))
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of ClickHouse that can swallow the answer to the
/// next INSERTs: ClickHouse stores the rows, the client sees its connection
/// drop, as when a response is lost on the network.
pub struct DroppingProxy {
    pub port: u16,
    /// INSERT answers still to swallow.
    pub drops: Arc<AtomicU32>,
    /// INSERT answers swallowed so far.
    pub dropped: Arc<AtomicU32>,
}

impl DroppingProxy {
    /// Proxies 127.0.0.1:{port} to `upstream_port`.
    pub fn start(upstream_port: u16) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let drops = Arc::new(AtomicU32::new(0));
        let dropped = Arc::new(AtomicU32::new(0));
        let (d, dd) = (drops.clone(), dropped.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(("127.0.0.1", upstream_port))
                else {
                    continue;
                };
                let (d, dd) = (d.clone(), dd.clone());
                std::thread::spawn(move || proxy_connection(client, upstream, d, dd));
            }
        });
        DroppingProxy {
            port,
            drops,
            dropped,
        }
    }

    /// The URL to give trackedge.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn proxy_connection(
    client: std::net::TcpStream,
    upstream: std::net::TcpStream,
    drops: Arc<AtomicU32>,
    dropped: Arc<AtomicU32>,
) {
    use std::io::{Read, Write};
    use std::sync::atomic::AtomicBool;
    let poisoned = Arc::new(AtomicBool::new(false));
    let (mut c_read, mut u_write) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
    let p = poisoned.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match c_read.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            // The crate names the statement in the URL: `?...query=INSERT+INTO`.
            let is_insert = chunk.windows(12).any(|w| w == b"query=INSERT");
            if is_insert
                && drops
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                    .is_ok()
            {
                p.store(true, Ordering::SeqCst);
            }
            if u_write.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = u_write.shutdown(std::net::Shutdown::Write);
    });
    let (mut u_read, mut c_write) = (upstream, client);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match u_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if poisoned.load(Ordering::SeqCst) {
            // ClickHouse sends the headers when the INSERT starts and the
            // last chunk when it has stored the rows: swallow everything up
            // to that last chunk, then cut the client off.
            let mut answer = buf[..n].to_vec();
            while !answer.ends_with(b"0\r\n\r\n") {
                match u_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(m) => answer.extend_from_slice(&buf[..m]),
                }
            }
            dropped.fetch_add(1, Ordering::SeqCst);
            let _ = c_write.shutdown(std::net::Shutdown::Both);
            let _ = u_read.shutdown(std::net::Shutdown::Both);
            return;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(std::net::Shutdown::Both);
}
