//! Helpers shared by the tests that run `triage run` as a process: scratch
//! directories, free loopback ports, the process handle, seeded storms
//! and a minimal HTTP/1.1 client (enough for the receiver, no dependency).

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

/// A scratch directory removed at the end.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("triage-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // TRIAGE_KEEP_TEST_DIRS=1 keeps logs and storms for a look after.
        if std::env::var_os("TRIAGE_KEEP_TEST_DIRS").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `triage run` process, killed on drop.
pub struct Service {
    child: Option<Child>,
}

impl Service {
    /// Starts `triage run` with `args`; its stderr is appended to `log`
    /// after a marker line, stdout goes to `stdout` or nowhere.
    pub fn start<S: AsRef<OsStr>>(args: &[S], log: &Path) -> Service {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = writeln!(log, "-- test: engine started");
        let child = Command::new(env!("CARGO_BIN_EXE_triage"))
            .arg("run")
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        Service { child: Some(child) }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status within `bound`.
    pub fn terminate(&mut self, bound: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A storm over the reference catalog, with `sentinels` alerts a day later
/// at the end (one per partition, so every timer fires), written to
/// `storm.jsonl` in `dir`.
pub fn storm(dir: &Scratch, seed: u64, sentinels: u32) -> (PathBuf, Vec<String>) {
    let path = dir.path("storm.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["sim", "--config"])
        .arg(repo("config/triage.yaml"))
        .args(["--seed", &seed.to_string(), "--duration", "1h", "--faults", "5"])
        .args(["--noise-per-hour", "20", "--out"])
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for p in 0..sentinels {
        lines.push(format!(
            concat!(
                r#"{{"labels":{{"alertname":"EndOfTestStorm","service":"sentinel-{}","#,
                r#""cluster":"eu-1","severity":"info"}},"startsAt":"2026-01-02T12:00:00Z"}}"#
            ),
            p
        ));
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    (path, lines)
}

/// Writes `input` to `child`'s stdin and collects its output. The input
/// goes from another thread: a storm's events outgrow the pipe's buffer
/// long before its alerts are all written.
pub fn output_fed(mut child: Child, input: Vec<u8>) -> Output {
    let writer = child.stdin.take().map(|mut stdin| {
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    output
}

/// What `triage replay` writes for `lines` on `partition` with `options`.
pub fn replay(config: &Path, lines: &[&str], partition: u32, options: &[&str]) -> Vec<String> {
    let child = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(["replay", "--summary", "none", "--partition", &partition.to_string(), "--config"])
        .arg(config)
        .args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let output = output_fed(child, (lines.join("\n") + "\n").into_bytes());
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
/// `chunked` sends the body without a length.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunked: bool,
) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
    }
    let mut request = head.into_bytes();
    if chunked {
        for chunk in body.chunks(64 * 1024) {
            request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            request.extend_from_slice(chunk);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
    } else {
        request.extend_from_slice(body);
    }
    // The server may answer (413) and close before it read everything.
    let _ = stream.write_all(&request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, headers: head.to_ascii_lowercase(), body: body.to_owned() }
}

/// Waits until `GET path` answers 200 (the server may not listen yet).
pub fn wait_for_200(port: u16, path: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http(port, "GET", path, &[], b"", false).status == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "GET {path} on {port}: no 200 within {bound:?}");
        sleep(Duration::from_millis(50));
    }
}

/// Waits until the receiver's `GET /readyz` answers 200.
pub fn wait_ready(port: u16, bound: Duration) {
    wait_for_200(port, "/readyz", bound);
}

/// tansu, as `./scripts/setup` installs it.
pub fn tansu() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin/tansu");
    if installed.exists() { installed } else { PathBuf::from("tansu") }
}

/// A tansu broker on a free loopback port, stopped on drop.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    storage: String,
    log: PathBuf,
}

impl Broker {
    pub fn start(storage: &str, log: PathBuf) -> Broker {
        let mut broker =
            Broker { child: None, port: free_port(), storage: storage.to_owned(), log };
        broker.spawn();
        broker
    }

    pub fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{e}"));
        // A `sqlite://FILE` storage path is relative to the working
        // directory: the scratch directory the log is in.
        let dir = self.log.parent().map(Path::to_path_buf).unwrap_or_default();
        let child = Command::new(tansu())
            .current_dir(dir)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({e}); ./scripts/test installs it when missing")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {}", self.port);
            sleep(Duration::from_millis(100));
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = Command::new(tansu())
                .args(["topic", "create", name, "--partitions", &partitions.to_string()])
                .args(["--broker", &url])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                return;
            }
            assert!(Instant::now() < deadline, "cannot create topic {name}");
            sleep(Duration::from_millis(200));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A local HTTP server playing a responder (PagerDuty's Events API, a
/// webhook receiver): answers 202 to every request and keeps the JSON
/// bodies, in arrival order.
pub struct FakeHttp {
    pub port: u16,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

/// One request a [`FakeHttp`] received: headers and body.
pub type Received = (Vec<(String, String)>, Vec<u8>);

impl FakeHttp {
    pub fn start() -> FakeHttp {
        use std::io::{BufRead as _, BufReader, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = requests.clone();
        // Lives as long as the test process; it only answers loopback.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut headers = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.trim_end().split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        headers.push((name.to_owned(), value.trim().to_owned()));
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(mut all) = kept.lock()
                {
                    all.push((headers, body));
                }
                let answer = concat!(
                    "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n",
                    "Content-Length: 20\r\nConnection: close\r\n\r\n",
                    "{\"status\":\"success\"}"
                );
                let _ = reader.get_mut().write_all(answer.as_bytes());
            }
        });
        FakeHttp { port, requests }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Every JSON body received so far.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        let requests = self.requests();
        requests.iter().map(|(_, b)| serde_json::from_slice(b).unwrap_or_default()).collect()
    }

    /// `(dedup_key, event_action)` of every request, in arrival order.
    pub fn actions(&self) -> Vec<(String, String)> {
        self.bodies()
            .iter()
            .map(|b| {
                let key = b["dedup_key"].as_str().unwrap_or_default().to_owned();
                (key, b["event_action"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }
}
