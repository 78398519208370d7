"""Benchmark: our producer and consumer against librdkafka's C performance tool and Python
confluent-kafka on the same broker.

Run through scripts/bench, which builds the release binaries and starts Apache Kafka. Every
contender runs as its own process and is measured the same way (wall time; CPU and peak
RSS from wait4), so the ratios compare like with like:

- producers send the same 1,000,000 telemetry events: ours generates and Avro-encodes them
  itself; Python sends payloads pre-encoded by fastavro, streamed from a file;
- consumers read the same topic to the end: ours decodes every event (Avro → JSON,
  --output none), Python does not decode at all;
- librdkafka's `rdkafka_performance` (C, built against the same library) is the floor: `-P`
  sends 140-byte values of its own with idempotence, `-C -G` reads the same topic as the
  other consumers without looking at the bytes.

The headline is CPU seconds per million events; then throughput and peak RSS, as ratios.
"""
import io
import json
import os
import struct
import subprocess
import sys
import time
import uuid

N = int(os.environ.get("BENCH_EVENTS", "1000000"))
# The broker shares the machine and stalls now and then: alternate the contenders over
# several rounds and report each one's median run.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def measure(cmd, env=None):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024}


def medians(runs):
    """Per contender: the median run by wall time, the median CPU, the largest peak RSS and
    every run's wall time."""
    results = {}
    for name, rs in runs.items():
        by_wall = sorted(rs, key=lambda r: r["wall"])
        median = dict(by_wall[len(by_wall) // 2])
        median["cpu"] = sorted(r["cpu"] for r in rs)[len(rs) // 2]
        median["rss_mib"] = max(r["rss_mib"] for r in rs)
        median["walls"] = [round(r["wall"], 2) for r in rs]
        results[name] = median
    return results


def make_payloads(path, schema_file):
    from fastavro import schemaless_writer
    from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form
    schema = parse_schema(json.load(open(schema_file)))
    header = b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    total = 0
    with open(path, "wb") as f:
        for i in range(N):
            buf = io.BytesIO()
            buf.write(header)
            schemaless_writer(buf, schema, {
                "event_id": str(uuid.UUID(int=i, version=4)), "sensor_id": f"sensor-{i % 100:05d}",
                "timestamp": 1795334400000 + i, "temperature": 20.0 + (i % 100) / 10,
                "humidity": 45.5, "properties": {"site": f"site-{i % 17:02d}", "firmware": "1.5.0"},
            })
            value = buf.getvalue()
            key = f"sensor-{i % 100:05d}".encode()
            f.write(struct.pack(">HI", len(key), len(value)) + key + value)
            total += len(value)
    return total


def py_produce(bootstrap, topic, path):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    delivered = [0, 0]

    def on_delivery(err, _msg):
        delivered[0 if err is None else 1] += 1
    with open(path, "rb") as f:
        while True:
            head = f.read(6)
            if not head:
                break
            klen, vlen = struct.unpack(">HI", head)
            key, value = f.read(klen), f.read(vlen)
            while True:
                try:
                    p.produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    p.poll(0.05)
            p.poll(0)
    p.flush(120)
    if delivered != [N, 0]:
        raise SystemExit(f"python producer delivered {delivered}")


def py_consume(bootstrap, topic):
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-py-{uuid.uuid4().hex}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    seen = 0
    while seen < N:
        for m in c.consume(1000, 1.0):
            if not m.error():
                seen += 1
    c.close()


def main():
    if sys.argv[1] == "py-produce":
        return py_produce(*sys.argv[2:5])
    if sys.argv[1] == "py-consume":
        return py_consume(*sys.argv[2:4])
    bootstrap, bin_dir, schema_file, work, c_tool = sys.argv[1:6]
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, RUST_LOG="warn")
    producer, consumer = f"{bin_dir}/producer", f"{bin_dir}/consumer"
    me = [sys.executable, os.path.abspath(__file__)]

    payloads = f"{work}/payloads.bin"
    print(f"preparing {N:,} pre-encoded payloads for the Python producer ...", flush=True)
    payload_bytes = make_payloads(payloads, schema_file)

    runs = {k: [] for k in ("producer_ours", "producer_c", "producer_py",
                            "consumer_ours", "consumer_c", "consumer_py")}
    for round_ in range(1, ROUNDS + 1):
        print(f"round {round_}/{ROUNDS}: producers ...", flush=True)
        ours_topic, py_topic, c_topic = f"bench-ours-{round_}", f"bench-py-{round_}", f"bench-c-{round_}"
        for topic in (ours_topic, py_topic, c_topic):
            measure([producer, "--topic", topic, "--ensure-topic", "--partitions", "4", "--generate", "0"], env)
        runs["producer_ours"].append(measure([producer, "--topic", ours_topic, "--generate", str(N), "--seed", str(round_)], env))
        runs["producer_c"].append(measure([c_tool, "-P", "-t", c_topic, "-b", bootstrap, "-s", "140",
                                           "-c", str(N), "-a", "-1", "-X", "enable.idempotence=true", "-q"], env))
        runs["producer_py"].append(measure(me + ["py-produce", bootstrap, py_topic, payloads], env))
        print(f"round {round_}/{ROUNDS}: consumers ...", flush=True)
        runs["consumer_ours"].append(measure([consumer, "--topic", ours_topic, "--group", f"bench-{uuid.uuid4().hex}",
                                              "--max-events", str(N), "--output", "none", "--idle-timeout", "60s"], env))
        runs["consumer_c"].append(measure([c_tool, "-C", "-G", f"bench-c-{uuid.uuid4().hex}", "-t", ours_topic,
                                           "-b", bootstrap, "-o", "beginning", "-c", str(N), "-q"], env))
        runs["consumer_py"].append(measure(me + ["py-consume", bootstrap, ours_topic], env))
    results = medians(runs)
    mb = payload_bytes / N * N / 1e6
    print()
    print(f"{N:,} events, {payload_bytes / N:.0f} bytes each on average; median of {ROUNDS} alternating runs (peak RSS: the largest)")
    print(f"{'':26}{'events/s':>12}{'MB/s':>8}{'CPU s/M ev':>12}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:26}{N / r['wall']:>12,.0f}{mb / r['wall']:>8.1f}{r['cpu'] / N * 1e6:>12.2f}{r['rss_mib']:>14.1f}   runs {r['walls']} s")
    print()
    ratio = lambda a, b, key: results[a][key] / results[b][key]
    rows = [
        ("consumer CPU per event vs the C tool (-C, no decoding)", ratio("consumer_ours", "consumer_c", "cpu"), "<= 2.0x"),
        ("consumer CPU per event vs Python (no decoding)", ratio("consumer_ours", "consumer_py", "cpu"), "<= 1.0x"),
        ("producer CPU per event vs the C tool (-P, 140-byte values)", ratio("producer_ours", "producer_c", "cpu"), "<= 2.0x"),
        ("producer throughput vs the C tool", ratio("producer_c", "producer_ours", "wall"), ">= 0.8x"),
        ("consumer throughput vs the C tool", ratio("consumer_c", "consumer_ours", "wall"), "(none)"),
        ("producer throughput vs Python", ratio("producer_py", "producer_ours", "wall"), "(none)"),
    ]
    print(f"{'':62}{'now':>8}   target")
    for name, value, target in rows:
        print(f"{name:62}{value:>7.2f}x   {target}")
    print(f"{'peak RSS, producer / consumer (MiB)':62}{results['producer_ours']['rss_mib']:>4.0f} / {results['consumer_ours']['rss_mib']:.0f}   <= 48 / 32")
    json.dump(results, open(f"{work}/results.json", "w"), indent=1)


if __name__ == "__main__":
    main()
