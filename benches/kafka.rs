//! Kafka end to end: is the engine the bottleneck?
//!
//! A tansu broker (memory storage) on a free loopback port gets a storm of
//! webhook payloads of about 1 KB each on a 2-partition alerts topic.
//! Then, alternately and on the same topic, two readers are timed from
//! their first record to their last:
//! - **consume only**: a librdkafka consumer with triage's consumer
//!   settings that only touches each payload (the broker's rate);
//! - **triage run**: the whole service (decode, correlate, produce
//!   events, checkpoint state), with a fresh group and fresh incidents and
//!   state topics each round.
//!
//! The ratio of the medians is the figure: the target is >= 0.8.
//!
//! Run: `cargo bench --bench kafka` (`TRIAGE_BENCH_ALERTS` sets the size,
//! 200000 by default; `TRIAGE_BENCH_ROUNDS` the rounds, 3). Needs tansu,
//! which `./scripts/setup` installs.

use std::io::Write as _;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::sleep;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use triage_sim::StormSpec;

const PARTITIONS: i32 = 2;

struct Broker(Child, u16);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu() -> PathBuf {
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    home.join("bin/tansu")
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(tansu())
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start tansu ({e}); ./scripts/setup installs it"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen");
        sleep(Duration::from_millis(100));
    }
    Broker(child, port)
}

fn create_topic(port: u16, name: &str, partitions: i32) {
    let url = format!("tcp://127.0.0.1:{port}");
    let status = Command::new(tansu())
        .args(["topic", "create", name, "--partitions", &partitions.to_string()])
        .args(["--broker", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(status.is_ok_and(|s| s.success()), "cannot create {name}");
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The storm, produced to `alerts`, line i to partition i % 2.
fn produce_storm(brokers: &str, lines: &[String]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, line) in lines.iter().enumerate() {
        let partition = i as i32 % PARTITIONS;
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to("alerts").partition(partition).payload(line.as_bytes());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap_or_else(|e| panic!("{e}"));
}

/// Records per second of a bare consumer reading every record once.
fn consume_only(brokers: &str, group: &str, total: usize) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap_or_else(|e| panic!("{e}"));
    consumer.subscribe(&["alerts"]).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = 0usize;
    let mut bytes = 0usize;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < total && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += message.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    assert_eq!(seen, total, "consumer read {seen} of {total}");
    std::hint::black_box(bytes);
    total as f64 / first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64())
}

/// Records per second of `triage run` over the same topic.
fn triage_run(port: u16, round: usize, total: usize) -> f64 {
    let incidents = format!("incidents-{round}");
    let state = format!("state-{round}");
    create_topic(port, &incidents, 2);
    create_topic(port, &state, PARTITIONS);
    let mut config = triage_suite::reference_config();
    config.kafka.brokers = format!("127.0.0.1:{port}");
    config.kafka.group_id = format!("bench-triage-{round}");
    config.kafka.topics.incidents = incidents;
    config.kafka.topics.state = state;
    config.receiver.listen = String::new();
    let control = triage_stream::Control::default();
    let running = control.clone();
    let service = std::thread::spawn(move || triage_stream::run(Arc::new(config), &running));
    let telemetry = control.telemetry.clone();
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = telemetry.summary().records as usize;
        if done > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if done >= total || Instant::now() > deadline {
            break;
        }
        sleep(Duration::from_millis(1));
    }
    let elapsed = first.map_or(f64::NAN, |t| t.elapsed().as_secs_f64());
    control.shutdown.store(true, Ordering::Relaxed);
    let summary = service.join().unwrap_or_else(|_| panic!("service panicked"));
    summary.unwrap_or_else(|e| panic!("{e}"));
    let events = telemetry.summary().events;
    assert!(events > 0, "triage produced no events");
    total as f64 / elapsed
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let total = env_number("TRIAGE_BENCH_ALERTS", 200_000);
    let rounds = env_number("TRIAGE_BENCH_ROUNDS", 3).max(1);
    let config = triage_suite::reference_config();
    let spec = StormSpec {
        seed: 7,
        duration: Duration::from_secs(6 * 3600),
        faults: 60,
        noise_per_hour: 600,
        renotify_every: Duration::from_secs(60),
        pad_to_bytes: 1024,
        ..StormSpec::default()
    };
    let mut lines = triage_suite::storm(&config, &spec);
    while lines.len() < total {
        let more = lines.clone();
        lines.extend(more);
    }
    lines.truncate(total);
    let mean = lines.iter().map(String::len).sum::<usize>() / lines.len().max(1);

    let broker = start_broker();
    let brokers = format!("127.0.0.1:{}", broker.1);
    create_topic(broker.1, "alerts", PARTITIONS);
    create_topic(broker.1, "alerts-dead-letters", 1);
    let started = Instant::now();
    produce_storm(&brokers, &lines);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "storm: {total} records of {mean} bytes on {PARTITIONS} partitions (produced in {:.1?})",
        started.elapsed()
    );
    let mut consumed = Vec::new();
    let mut triaged = Vec::new();
    for round in 0..rounds {
        let c = consume_only(&brokers, &format!("bench-consume-{round}"), total);
        let t = triage_run(broker.1, round, total);
        let _ = writeln!(
            out,
            "round {round}: consume only {c:.0} records/s, triage run {t:.0} records/s ({:.2}x)",
            t / c
        );
        consumed.push(c);
        triaged.push(t);
    }
    let (c, t) = (median(consumed), median(triaged));
    let _ = writeln!(
        out,
        "median: consume only {c:.0} records/s, triage run {t:.0} records/s, ratio {:.2} \
         (target >= 0.8)",
        t / c
    );
}
