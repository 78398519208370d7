"""Benchmark: from topic to table. Run through scripts/bench-sink.

The same N generated telemetry events (Avro, 4 partitions) are read to the end by:
- consumer --output json (JSON lines to /dev/null): the consumer's own pace, decoding included;
- consumer --sink-db postgres://… and sqlite://…: decoded and written into capture_events
  with the group's positions, exactly once;
- consumer --capture-dir, then capture-loader load of those files into PostgreSQL: the Capture
  path (the loader's rate is from files already on disk; the consumer writing them is shown
  apart).
Each contender is its own process, measured the same way (wall time; CPU and peak RSS from
wait4); BENCH_ROUNDS alternating rounds, medians.
"""
import os
import subprocess
import sys
import time
import uuid

# Measured and summarised the way scripts/bench does it (same directory).
from bench import measure, medians

N = int(os.environ.get("BENCH_EVENTS", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))


def psql(url, sql):
    subprocess.run(["psql", url, "-qAtc", sql], check=True, stdout=subprocess.DEVNULL)


def drop(url, db):
    # Autovacuum (another role's backend) may still be analysing the fresh rows: wait for it.
    for _ in range(60):
        if subprocess.run(["psql", url, "-qAtc", f"DROP DATABASE {db} WITH (FORCE)"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return
        time.sleep(1)
    print(f"could not drop {db}; drop it by hand", flush=True)


def main():
    bootstrap, bin_dir, work, admin = sys.argv[1:5]
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, RUST_LOG="warn")
    producer, consumer, loader = (f"{bin_dir}/{b}" for b in ("producer", "consumer", "capture-loader"))
    base = admin.rsplit("/", 1)[0]
    topic = "bench-sink"
    print(f"producing {N:,} events ...", flush=True)
    measure([producer, "--topic", topic, "--ensure-topic", "--partitions", "4", "--generate", str(N)], env)

    def read(extra):
        return measure([consumer, "--topic", topic, "--group", f"b-{uuid.uuid4().hex}",
                        "--max-events", str(N), "--idle-timeout", "60s"] + extra, env)

    runs = {k: [] for k in ("json_lines", "sink_postgres", "sink_sqlite", "capture_dir", "loader_postgres")}
    for round_ in range(1, ROUNDS + 1):
        print(f"round {round_}/{ROUNDS} ...", flush=True)
        runs["json_lines"].append(read(["--output", "json"]))
        db = f"bench_sink_{uuid.uuid4().hex[:8]}"
        psql(admin, f"CREATE DATABASE {db}")
        runs["sink_postgres"].append(read(["--sink-db", f"{base}/{db}"]))
        drop(admin, db)
        sqlite = f"{work}/sink-{round_}.db"
        runs["sink_sqlite"].append(read(["--sink-db", f"sqlite://{sqlite}"]))
        os.remove(sqlite)
        capture = f"{work}/capture-{round_}"
        runs["capture_dir"].append(read(["--capture-dir", capture, "--capture-window", "10s"]))
        db = f"bench_load_{uuid.uuid4().hex[:8]}"
        psql(admin, f"CREATE DATABASE {db}")
        runs["loader_postgres"].append(measure([loader, "load", capture, "--db", f"{base}/{db}"], env))
        drop(admin, db)
        subprocess.run(["rm", "-rf", capture], check=True)
    results = medians(runs)
    print()
    print(f"{N:,} events, 4 partitions; median of {ROUNDS} alternating runs (peak RSS: the largest)")
    print(f"{'':22}{'events/s':>12}{'seconds':>10}{'CPU s/M ev':>12}{'peak RSS MiB':>14}")
    for name, r in results.items():
        print(f"{name:22}{N / r['wall']:>12,.0f}{r['wall']:>10.2f}{r['cpu'] / N * 1e6:>12.2f}{r['rss_mib']:>14.1f}   runs {r['walls']} s")
    rate = {k: N / r["wall"] for k, r in results.items()}
    print()
    print(f"topic -> PostgreSQL (--sink-db): {rate['sink_postgres'] / rate['json_lines']:.2f}x the consumer writing JSON lines, "
          f"{rate['sink_postgres'] / rate['loader_postgres']:.2f}x the loader from files, "
          f"{rate['sink_postgres'] * (1 / rate['capture_dir'] + 1 / rate['loader_postgres']):.2f}x the whole Capture path (files, then loader)")
    print(f"topic -> SQLite (--sink-db): {rate['sink_sqlite'] / rate['json_lines']:.2f}x the consumer writing JSON lines")


if __name__ == "__main__":
    main()
