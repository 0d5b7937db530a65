//! The state topic: where each alerts partition's correlator is persisted,
//! and where the clock moves of idle partitions are recorded before they
//! take effect.
//!
//! # Layout
//! Alerts partition `p` owns state partition `p`; only its owner writes
//! there, every record on its own (one record per batch, so that a reader
//! can fetch any one offset). Three kinds of record, named by the header
//! `triage.state.kind`:
//!
//! - `chunk`: a slice of a serialized [`Snapshot`] (at most
//!   [`CHUNK_BYTES`]), headers `triage.state.generation` and
//!   `triage.state.index`;
//! - `manifest`: written after the chunks of one snapshot; JSON naming the
//!   chunks' offsets, the snapshot's checksum and the alerts offset it
//!   covers up to (`next_offset`);
//! - `tick`: JSON `{after_offset, time}`: after the alerts record at
//!   `after_offset` the correlator's clock moved to `time`.
//!
//! Every chunk and tick also carries `triage.state.manifest_at`, the offset
//! of the last complete manifest before it. Recovery therefore reads the
//! partition's last record, follows it to the manifest, reads the chunks
//! it names, and collects the ticks written after it. It never scans the
//! history, and a snapshot interrupted half-way is ignored because its
//! manifest was never written. Keys (`{partition}/manifest`,
//! `{partition}/chunk/{slot}/{index}` with two alternating slots,
//! `{partition}/tick`) keep the topic safe to compact.

use std::time::Duration;

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use triage_correlate::Snapshot;
use triage_model::Timestamp;
use triage_model::hash::Fnv1a64;

use crate::client::{send_waiting, topic_partitions};
use crate::error::StreamError;

/// Largest snapshot slice per record, well under the brokers' default
/// message size limit of 1 MiB.
pub const CHUNK_BYTES: usize = 512 * 1024;

/// Header naming the record kind.
const KIND: &str = "triage.state.kind";
/// Header with the offset of the last complete manifest before a record.
const MANIFEST_AT: &str = "triage.state.manifest_at";

/// What a snapshot's manifest says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Counts the snapshots of this partition.
    pub generation: u64,
    /// The alerts offset the snapshot covers up to, exclusive.
    pub next_offset: i64,
    /// State offsets of the chunks, in order.
    pub chunks: Vec<i64>,
    /// Snapshot length in bytes.
    pub bytes: usize,
    /// FNV-1a of the snapshot bytes.
    pub checksum: u64,
}

/// A recorded clock move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The alerts offset after which the clock moved.
    pub after_offset: i64,
    /// Where it moved to.
    pub time: Timestamp,
}

/// What recovery found for a partition.
#[derive(Debug)]
pub struct Recovered {
    /// The last complete snapshot and where it stops.
    pub snapshot: Option<(Snapshot, Manifest)>,
    /// Clock moves recorded after it, in order.
    pub ticks: Vec<Tick>,
    /// Where the next record's `manifest_at` points.
    pub manifest_at: Option<i64>,
}

/// Delivery reports of the state producer: the offset each record got.
#[derive(Default)]
pub struct StateDeliveries {
    delivered: Mutex<Vec<(usize, Result<i64, String>)>>,
}

impl ClientContext for StateDeliveries {}

impl ProducerContext for StateDeliveries {
    type DeliveryOpaque = Box<usize>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((error, _)) => Err(error.to_string()),
        };
        if let Ok(mut delivered) = self.delivered.lock() {
            delivered.push((*opaque, outcome));
        }
    }
}

/// Reads and writes the state topic for the partitions this instance owns.
pub struct StateStore {
    topic: String,
    producer: BaseProducer<StateDeliveries>,
    reader_config: ClientConfig,
    timeout: Duration,
}

impl StateStore {
    /// A store over `topic`. `producer` and `reader` are the client
    /// settings to start from.
    pub fn new(
        topic: &str,
        mut producer: ClientConfig,
        mut reader: ClientConfig,
        timeout: Duration,
    ) -> Result<StateStore, StreamError> {
        // One record per batch: the test broker (tansu 0.6) cannot serve a
        // fetch that starts inside a batch, and recovery fetches by offset.
        producer.set("batch.num.messages", "1");
        let producer = producer
            .create_with_context(StateDeliveries::default())
            .map_err(|e| StreamError::client("state producer", e))?;
        reader.set("enable.auto.commit", "false").set("enable.partition.eof", "true");
        Ok(StateStore { topic: topic.to_owned(), producer, reader_config: reader, timeout })
    }

    /// Partitions of the state topic (an error when it does not exist).
    pub fn partitions(&self) -> Result<usize, StreamError> {
        topic_partitions(self.producer.client(), &self.topic, self.timeout)
    }

    /// Writes `snapshot`, covering alerts up to `next_offset`, as
    /// generation `generation`; returns the new manifest's offset. Returns
    /// only once every record is acknowledged.
    pub fn save(
        &self,
        partition: i32,
        snapshot: &Snapshot,
        next_offset: i64,
        generation: u64,
        manifest_at: Option<i64>,
    ) -> Result<i64, StreamError> {
        let bytes = serde_json::to_vec(snapshot).map_err(StreamError::Snapshot)?;
        let mut hash = Fnv1a64::default();
        hash.write(&bytes);
        let slot = generation % 2;
        let manifest_at_text = manifest_at.map(|m| m.to_string());
        for (index, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
            let key = format!("{partition}/chunk/{slot}/{index}");
            let generation_text = generation.to_string();
            let index_text = index.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header { key: KIND, value: Some("chunk") })
                .insert(Header { key: "triage.state.generation", value: Some(&generation_text) })
                .insert(Header { key: "triage.state.index", value: Some(&index_text) });
            if let Some(at) = &manifest_at_text {
                headers = headers.insert(Header { key: MANIFEST_AT, value: Some(at) });
            }
            self.send(partition, &key, chunk, headers, index)?;
        }
        let chunks = self.wait_for_offsets(bytes.chunks(CHUNK_BYTES).len())?;
        let manifest = Manifest {
            generation,
            next_offset,
            chunks,
            bytes: bytes.len(),
            checksum: hash.finish(),
        };
        let payload = serde_json::to_vec(&manifest).map_err(StreamError::Snapshot)?;
        let headers = OwnedHeaders::new().insert(Header { key: KIND, value: Some("manifest") });
        self.send(partition, &format!("{partition}/manifest"), &payload, headers, 0)?;
        let offsets = self.wait_for_offsets(1)?;
        offsets.first().copied().ok_or(StreamError::Delivery("manifest offset missing".into()))
    }

    /// Records a clock move and returns once it is acknowledged, so that
    /// its effects can be sent.
    pub fn record_tick(
        &self,
        partition: i32,
        tick: Tick,
        manifest_at: Option<i64>,
    ) -> Result<(), StreamError> {
        let payload = serde_json::to_vec(&tick).map_err(StreamError::Snapshot)?;
        let at = manifest_at.map(|m| m.to_string());
        let mut headers = OwnedHeaders::new().insert(Header { key: KIND, value: Some("tick") });
        if let Some(at) = &at {
            headers = headers.insert(Header { key: MANIFEST_AT, value: Some(at) });
        }
        self.send(partition, &format!("{partition}/tick"), &payload, headers, 0)?;
        self.wait_for_offsets(1).map(|_| ())
    }

    fn send(
        &self,
        partition: i32,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
        index: usize,
    ) -> Result<(), StreamError> {
        let record = BaseRecord::with_opaque_to(&self.topic, Box::new(index))
            .partition(partition)
            .key(key)
            .payload(payload)
            .headers(headers);
        send_waiting(&self.producer, record).map_err(|e| StreamError::client("state write", e))
    }

    /// Waits until `count` records are acknowledged; their offsets by the
    /// index they were sent with.
    fn wait_for_offsets(&self, count: usize) -> Result<Vec<i64>, StreamError> {
        self.producer.flush(self.timeout).map_err(|e| StreamError::client("state flush", e))?;
        let delivered = match self.producer.context().delivered.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => return Err(StreamError::Delivery("delivery reports poisoned".into())),
        };
        let mut offsets = vec![-1; count];
        for (index, outcome) in delivered {
            let offset = outcome.map_err(StreamError::Delivery)?;
            if let Some(slot) = offsets.get_mut(index) {
                *slot = offset;
            }
        }
        if offsets.contains(&-1) {
            return Err(StreamError::Delivery("a state record was not acknowledged".into()));
        }
        Ok(offsets)
    }

    /// Everything recovery needs for `partition`.
    pub fn load(&self, partition: i32) -> Result<Recovered, StreamError> {
        let reader: BaseConsumer =
            self.reader_config.create().map_err(|e| StreamError::client("state reader", e))?;
        let (low, high) = reader
            .fetch_watermarks(&self.topic, partition, self.timeout)
            .map_err(|e| StreamError::client("state watermarks", e))?;
        let empty = Recovered { snapshot: None, ticks: Vec::new(), manifest_at: None };
        if high <= low {
            return Ok(empty);
        }
        let last = self.read_one(&reader, partition, high - 1)?;
        let manifest_at = match last.kind.as_str() {
            "manifest" => Some(high - 1),
            _ => last.manifest_at,
        };
        let Some(manifest_at) = manifest_at else {
            // No snapshot was ever completed; ticks before the first
            // snapshot belong to a state that was never saved either.
            return Ok(empty);
        };
        let manifest_record = self.read_one(&reader, partition, manifest_at)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_record.payload)
            .map_err(|e| StreamError::corrupt(partition, manifest_at, e.to_string()))?;
        let mut bytes = Vec::with_capacity(manifest.bytes);
        for &offset in &manifest.chunks {
            bytes.extend_from_slice(&self.read_one(&reader, partition, offset)?.payload);
        }
        let mut hash = Fnv1a64::default();
        hash.write(&bytes);
        if bytes.len() != manifest.bytes || hash.finish() != manifest.checksum {
            return Err(StreamError::corrupt(partition, manifest_at, "checksum mismatch".into()));
        }
        let snapshot: Snapshot = serde_json::from_slice(&bytes)
            .map_err(|e| StreamError::corrupt(partition, manifest_at, e.to_string()))?;
        let mut ticks = Vec::new();
        let mut offset = manifest_at + 1;
        if offset < high {
            seek(&reader, &self.topic, partition, offset)?;
            while offset < high {
                let record = next_record(&reader, self.timeout, partition, offset)?;
                offset = record.offset + 1;
                if record.kind == "tick" {
                    let tick: Tick = serde_json::from_slice(&record.payload).map_err(|e| {
                        StreamError::corrupt(partition, record.offset, e.to_string())
                    })?;
                    ticks.push(tick);
                }
            }
        }
        Ok(Recovered {
            snapshot: Some((snapshot, manifest)),
            ticks,
            manifest_at: Some(manifest_at),
        })
    }

    fn read_one(
        &self,
        reader: &BaseConsumer,
        partition: i32,
        offset: i64,
    ) -> Result<StateRecord, StreamError> {
        seek(reader, &self.topic, partition, offset)?;
        let record = next_record(reader, self.timeout, partition, offset)?;
        if record.offset != offset {
            return Err(StreamError::corrupt(
                partition,
                offset,
                format!("asked for this offset, got {}", record.offset),
            ));
        }
        Ok(record)
    }
}

struct StateRecord {
    offset: i64,
    kind: String,
    manifest_at: Option<i64>,
    payload: Vec<u8>,
}

fn seek(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), StreamError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Offset(offset))
        .map_err(|e| StreamError::client("state seek", e))?;
    reader.assign(&list).map_err(|e| StreamError::client("state seek", e))
}

fn next_record(
    reader: &BaseConsumer,
    timeout: Duration,
    partition: i32,
    expected: i64,
) -> Result<StateRecord, StreamError> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => return Ok(state_record(&message)),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                return Err(StreamError::corrupt(
                    partition,
                    expected,
                    "the state partition ends before this offset".into(),
                ));
            }
            Some(Err(e)) => return Err(StreamError::client("state read", e)),
            None => {}
        }
    }
    Err(StreamError::corrupt(partition, expected, format!("no record within {timeout:?}")))
}

fn state_record(message: &BorrowedMessage<'_>) -> StateRecord {
    let mut kind = String::new();
    let mut manifest_at = None;
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header.value.map(String::from_utf8_lossy).unwrap_or_default();
            match header.key {
                KIND => kind = value.into_owned(),
                MANIFEST_AT => manifest_at = value.parse().ok(),
                _ => {}
            }
        }
    }
    StateRecord {
        offset: message.offset(),
        kind,
        manifest_at,
        payload: message.payload().unwrap_or_default().to_vec(),
    }
}
