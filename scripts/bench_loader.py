"""capture-loader benchmark: 1,000,000 telemetry events in Capture files written by fastavro
(an independent writer), then, in one run and against the same rows:

PostgreSQL: our loader; `\\copy … FROM csv` through psql (the floor: no Avro, no checks);
            a straightforward Python loader (fastavro + psycopg executemany with
            ON CONFLICT DO NOTHING, one transaction per file: what the Function App does).
SQLite:     our loader; `sqlite3 .import` of the same CSV (the floor).

Each contender is its own process, measured the same way (wall time; CPU and peak RSS from
wait4). Our loader runs with --jobs 1, 2 and 4, each into a database of its own.
Targets: PostgreSQL with one job >= 90% of COPY's rows/s and >= 10x the Python loader, near-linear
with --jobs (as far as the machine's cores go: PostgreSQL's backends share them); SQLite >= 140% of
sqlite3 .import.
"""
import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

N = int(os.environ.get("BENCH_EVENTS", "1000000"))
PARTITIONS = 4
PER_FILE = 25_000
SCHEMA = {"type": "record", "name": "EventData", "namespace": "Microsoft.ServiceBus.Messaging", "fields": [
    {"name": "SequenceNumber", "type": "long"}, {"name": "Offset", "type": "string"},
    {"name": "EnqueuedTimeUtc", "type": "string"},
    {"name": "SystemProperties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
    {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]}},
    {"name": "Body", "type": ["null", "bytes"]}]}
COLUMNS = ("namespace, event_hub, partition_id, sequence_number, \"offset\", enqueued_time, partition_key, "
           "system_properties, properties, body, body_json, source_file")
EPOCH = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)


def measure(cmd, env=None, stdin=None):
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[0]} failed: {err.decode(errors='replace')[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "stdout": out.decode()}


def dotnet(t):
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {'AM' if t.hour < 12 else 'PM'}"


def generate(root, csv_path):
    """Capture files (fastavro) and the same rows as CSV for the COPY/.import floors."""
    import fastavro
    parsed = fastavro.parse_schema(SCHEMA)
    per_partition = N // PARTITIONS
    with open(csv_path, "w", newline="") as out:
        w = csv.writer(out)
        for p in range(PARTITIONS):
            for start in range(0, per_partition, PER_FILE):
                records = []
                t0 = EPOCH + timedelta(minutes=start // PER_FILE)
                for seq in range(start, min(start + PER_FILE, per_partition)):
                    t = t0 + timedelta(milliseconds=seq % PER_FILE)
                    sensor = f"sensor-{(seq * 7 + p) % 100:05d}"
                    body = json.dumps({"event_id": str(uuid.UUID(int=p * 10**9 + seq, version=4)),
                                       "sensor_id": sensor, "timestamp": t.isoformat().replace("+00:00", "Z"),
                                       "temperature": 20 + (seq % 100) / 10, "humidity": 45.5,
                                       "properties": {"site": "site-01"}}, separators=(",", ":")).encode()
                    ms = int(t.timestamp() * 1000)
                    records.append({"SequenceNumber": seq, "Offset": str(seq * 200), "EnqueuedTimeUtc": dotnet(t),
                                    "SystemProperties": {"x-opt-enqueued-time": ms, "x-opt-partition-key": sensor},
                                    "Properties": {}, "Body": body})
                    w.writerow(["bench", "telemetry", str(p), seq, str(seq * 200),
                                t.isoformat().replace("+00:00", "Z"), sensor,
                                json.dumps({"x-opt-enqueued-time": ms, "x-opt-partition-key": sensor}),
                                "{}", "\\x" + body.hex(), body.decode(), "csv"])
                d = os.path.join(root, "bench", "telemetry", str(p), f"{t0:%Y/%m/%d/%H/%M}")
                os.makedirs(d, exist_ok=True)
                with open(os.path.join(d, "00.avro"), "wb") as f:
                    fastavro.writer(f, parsed, records)


def python_loader(root, url):
    """The baseline: what a Function App does, with the loader's table and conflict rule."""
    import fastavro
    import psycopg
    sql = (f"INSERT INTO capture_events ({COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) "
           "ON CONFLICT DO NOTHING")
    with psycopg.connect(url) as conn:
        for dirpath, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                path = os.path.join(dirpath, name)
                parts = os.path.relpath(path, root).split(os.sep)
                rows = []
                with open(path, "rb") as f:
                    for r in fastavro.reader(f):
                        sp = r["SystemProperties"]
                        t = datetime.fromtimestamp(sp["x-opt-enqueued-time"] / 1000, tz=timezone.utc)
                        body = r["Body"]
                        rows.append((parts[0], parts[1], parts[2], r["SequenceNumber"], r["Offset"], t,
                                     sp.get("x-opt-partition-key"), json.dumps(sp), json.dumps(r["Properties"]),
                                     body, body.decode(), path))
                with conn.transaction():
                    with conn.cursor() as cur:
                        cur.executemany(sql, rows)


def psql(url, sql):
    subprocess.run(["psql", url, "-qAtc", sql], check=True, capture_output=True)


def main():
    if sys.argv[1] == "python-loader":
        return python_loader(sys.argv[2], sys.argv[3])
    loader, work, admin = sys.argv[1:4]
    root, csv_path = os.path.join(work, "capture"), os.path.join(work, "rows.csv")
    print(f"writing {N:,} events into Capture files with fastavro ...", flush=True)
    generate(root, csv_path)
    base = admin.rsplit("/", 1)[0]
    tag = uuid.uuid4().hex[:8]
    jobs = (1, 2, 4)
    dbs = {k: f"bench_{k}_{tag}" for k in [f"jobs{j}" for j in jobs] + ["copy", "python"]}
    for name in dbs.values():
        psql(admin, f"CREATE DATABASE {name}")
    urls = {k: f"{base}/{v}" for k, v in dbs.items()}
    env = dict(os.environ, RUST_LOG="warn")
    results = {}
    try:
        # The same schema for every contender: the loader's own migration.
        for k in ("copy", "python"):
            measure([loader, "status"], dict(env, DATABASE_URL=urls[k]))
        for j in jobs:
            print(f"PostgreSQL: our loader, --jobs {j} ...", flush=True)
            r = measure([loader, "load", root, "--jobs", str(j), "--summary-json"],
                        dict(env, DATABASE_URL=urls[f"jobs{j}"]))
            assert json.loads(r["stdout"].splitlines()[-1])["events_inserted"] == N, r["stdout"]
            results[f"pg_ours_jobs{j}"] = r
        print("PostgreSQL: COPY FROM csv through psql ...", flush=True)
        results["pg_copy"] = measure(["psql", urls["copy"], "-qc",
                                      f"\\copy capture_events ({COLUMNS}) FROM '{csv_path}' WITH (FORMAT csv)"])
        print("PostgreSQL: Python loader (fastavro + psycopg executemany) ...", flush=True)
        results["pg_python"] = measure([sys.executable, os.path.abspath(__file__), "python-loader", root, urls["python"]])
        for k in urls:
            count = subprocess.run(["psql", urls[k], "-qAtc", "SELECT count(*) FROM capture_events"],
                                   check=True, capture_output=True, text=True).stdout.strip()
            assert int(count) == N, f"{k}: {count} rows"
    finally:
        for name in dbs.values():
            subprocess.run(["psql", admin, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)

    print("SQLite: our loader ...", flush=True)
    ours_db, floor_db = os.path.join(work, "ours.db"), os.path.join(work, "floor.db")
    r = measure([loader, "load", root, "--summary-json"], dict(env, DATABASE_URL=f"sqlite://{ours_db}"))
    assert json.loads(r["stdout"].splitlines()[-1])["events_inserted"] == N
    results["sqlite_ours"] = r
    measure([loader, "status"], dict(env, DATABASE_URL=f"sqlite://{floor_db}"))
    print("SQLite: sqlite3 .import ...", flush=True)
    results["sqlite_import"] = measure(["sqlite3", floor_db, f".import --csv {csv_path} capture_events"])

    print()
    print(f"{N:,} events in {len(os.listdir(os.path.join(root, 'bench', 'telemetry')))} partitions, "
          f"{N // PER_FILE} Capture files")
    print(f"{'':32}{'rows/s':>12}{'seconds':>10}{'CPU s':>8}{'peak RSS MiB':>14}")
    for k, r in results.items():
        print(f"{k:32}{N / r['wall']:>12,.0f}{r['wall']:>10.2f}{r['cpu']:>8.2f}{r['rss_mib']:>14.1f}")
    copy_, py = results["pg_copy"]["wall"], results["pg_python"]["wall"]
    pg = {j: results[f"pg_ours_jobs{j}"]["wall"] for j in jobs}
    sq, imp = results["sqlite_ours"]["wall"], results["sqlite_import"]["wall"]
    print()
    print(f"{'':62}{'now':>8}   target")
    rows = [("loader into PostgreSQL, one job, vs \\copy of the same rows", f"{copy_ / pg[1]:.0%}", ">= 90%"),
            ("loader into PostgreSQL, one job, vs the Python loader", f"{py / pg[1]:.1f}x",
             f">= 10x (issue 3; \\copy itself is {py / copy_:.1f}x)")]
    rows += [(f"loader into PostgreSQL, --jobs {j}: speed-up over one job", f"{pg[1] / pg[j]:.2f}x",
              f"near {j}x (cores: {os.cpu_count()})") for j in jobs[1:]]
    rows += [("loader into SQLite vs sqlite3 .import", f"{imp / sq:.0%}", ">= 140%")]
    for name, now, target in rows:
        print(f"{name:62}{now:>8}   {target}")
    json.dump({k: {"wall": v["wall"], "cpu": v["cpu"], "rss_mib": v["rss_mib"]} for k, v in results.items()},
              open(os.path.join(work, "results.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
