"""An independent Kafka client for triage's tests (kafka-python, not
librdkafka): produces storms to the alerts topic and reads topics back.

produce: one record per line of a file, to the partition named by the
  line's position (line i goes to partition i % N unless --partition),
  each record acknowledged before the next is sent (one record per batch:
  tansu 0.6 cannot serve a fetch that starts inside a batch). --pace-ms
  spreads the records over time.
read: every record of a topic from the beginning, until nothing new came
  for --idle seconds, as JSON lines with partition, offset, key, headers
  and value.
"""

import argparse
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def produce(args):
    producer = KafkaProducer(
        bootstrap_servers=args.brokers, acks="all", linger_ms=0, retries=5,
        max_in_flight_requests_per_connection=1)
    sent = 0
    with open(args.file, "rb") as lines:
        for i, line in enumerate(lines):
            line = line.rstrip(b"\n")
            if not line:
                continue
            partition = args.partition if args.partition is not None else i % args.partitions
            key = args.key.encode() if args.key else None
            producer.send(args.topic, value=line, key=key, partition=partition).get(timeout=30)
            sent += 1
            if args.pace_ms:
                time.sleep(args.pace_ms / 1000.0)
    producer.flush()
    producer.close()
    print(json.dumps({"sent": sent}))


def read(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.brokers, enable_auto_commit=False,
        auto_offset_reset="earliest", consumer_timeout_ms=int(args.idle * 1000))
    partitions = consumer.partitions_for_topic(args.topic)
    deadline = time.time() + 30
    while not partitions and time.time() < deadline:
        time.sleep(0.2)
        partitions = consumer.partitions_for_topic(args.topic)
    assigned = [TopicPartition(args.topic, p) for p in sorted(partitions or [])]
    consumer.assign(assigned)
    consumer.seek_to_beginning(*assigned)
    out = sys.stdout
    for record in consumer:
        row = {
            "partition": record.partition,
            "offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or []},
            "value": record.value.decode("utf-8", "replace") if record.value else "",
        }
        out.write(json.dumps(row) + "\n")
    consumer.close()


def offsets(args):
    consumer = KafkaConsumer(bootstrap_servers=args.brokers)
    partitions = sorted(consumer.partitions_for_topic(args.topic) or [])
    assigned = [TopicPartition(args.topic, p) for p in partitions]
    ends = consumer.end_offsets(assigned)
    print(json.dumps({str(tp.partition): ends[tp] for tp in assigned}))
    consumer.close()


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("produce")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--partition", type=int)
    p.add_argument("--key")
    p.add_argument("--pace-ms", type=float, default=0)
    p.add_argument("file")
    r = sub.add_parser("read")
    r.add_argument("--brokers", required=True)
    r.add_argument("--topic", required=True)
    r.add_argument("--idle", type=float, default=3.0)
    o = sub.add_parser("offsets")
    o.add_argument("--brokers", required=True)
    o.add_argument("--topic", required=True)
    args = parser.parse_args()
    {"produce": produce, "read": read, "offsets": offsets}[args.command](args)


if __name__ == "__main__":
    main()
