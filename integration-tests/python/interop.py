"""Independent client for interoperability tests: Python confluent-kafka and fastavro.

Usage (all write JSON lines to stdout):
  interop.py consume-confluent BOOTSTRAP TOPIC REGISTRY_URL COUNT
      read COUNT events with confluent-kafka's own AvroDeserializer; print each value
  produce-confluent BOOTSTRAP TOPIC REGISTRY_URL SCHEMA_FILE INPUT_JSONL
      write each JSON line with confluent-kafka's AvroSerializer, keyed by sensor_id
  consume-single-object BOOTSTRAP TOPIC SCHEMA_FILE COUNT
      read COUNT single-object Avro events, checking the fingerprint with fastavro's
  produce-single-object BOOTSTRAP TOPIC SCHEMA_FILE INPUT_JSONL
      write single-object Avro (fastavro fingerprint + schemaless datum)
  produce-raw BOOTSTRAP TOPIC HEX...
      write each hex string as a raw value (undecodable-event tests)
  consume-azure BOOTSTRAP TOPIC REGISTRY_HOST COUNT
      read COUNT events with Microsoft's azure-schemaregistry-avroencoder, from the
      content-type header; print each value
  produce-azure BOOTSTRAP TOPIC REGISTRY_HOST GROUP SCHEMA_FILE INPUT_JSONL
      write each JSON line with Microsoft's encoder (auto-registering the schema in GROUP),
      its content type in the `content-type` header
The Azure commands read the registry's bearer token from AZURE_REGISTRY_TOKEN and trust
the CA in REQUESTS_CA_BUNDLE.
"""
import io
import json
import sys
import uuid
from datetime import datetime, timezone

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form


def consumer(bootstrap, topic):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "interop-" + uuid.uuid4().hex,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([topic])
    return c


def consume(bootstrap, topic, count, decode):
    c = consumer(bootstrap, topic)
    seen = 0
    idle = 0
    while seen < count and idle < 60:
        msg = c.poll(1.0)
        if msg is None:
            idle += 1
            continue
        if msg.error():
            raise SystemExit(f"consume error: {msg.error()}")
        idle = 0
        value = decode(msg)
        print(json.dumps(value, default=str))
        seen += 1
    c.close()
    if seen < count:
        raise SystemExit(f"only {seen} of {count} events arrived")


def to_record(line):
    event = json.loads(line)
    ts = event["timestamp"]
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    else:
        ts = datetime.fromtimestamp(ts / 1000, tz=timezone.utc)
    event["timestamp"] = ts
    event.setdefault("humidity", None)
    event.setdefault("properties", {})
    return event


def produce(bootstrap, topic, lines, encode):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures = []
    for line in lines:
        record = to_record(line)
        p.produce(topic, key=record["sensor_id"].encode(), value=encode(record),
                  on_delivery=lambda err, msg: err and failures.append(err))
        p.poll(0)
    p.flush(60)
    if failures:
        raise SystemExit(f"{len(failures)} deliveries failed: {failures[0]}")


class StaticTokenCredential:
    """azure-core's TokenCredential protocol over a token the test obtained."""

    def __init__(self, token):
        self.token = token

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken
        import time
        return AccessToken(self.token, int(time.time()) + 3600)


def azure_encoder(registry_host, group=None):
    import os
    from azure.schemaregistry import SchemaRegistryClient as AzureRegistryClient
    from azure.schemaregistry.encoder.avroencoder import AvroEncoder
    client = AzureRegistryClient(registry_host, StaticTokenCredential(os.environ["AZURE_REGISTRY_TOKEN"]))
    if group is None:
        return AvroEncoder(client=client)
    return AvroEncoder(client=client, group_name=group, auto_register=True)


def single_object_header(schema):
    return b"\xc3\x01" + bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def main(argv):
    command = argv[1]
    if command == "consume-confluent":
        bootstrap, topic, url, count = argv[2], argv[3], argv[4], int(argv[5])
        deserializer = AvroDeserializer(SchemaRegistryClient({"url": url}))
        consume(bootstrap, topic, count, lambda m: deserializer(
            m.value(), SerializationContext(topic, MessageField.VALUE)))
    elif command == "produce-confluent":
        bootstrap, topic, url, schema_file, input_file = argv[2:7]
        schema_str = open(schema_file).read()
        serializer = AvroSerializer(SchemaRegistryClient({"url": url}), schema_str)
        produce(bootstrap, topic, open(input_file), lambda r: serializer(
            r, SerializationContext(topic, MessageField.VALUE)))
    elif command == "consume-single-object":
        bootstrap, topic, schema_file, count = argv[2], argv[3], argv[4], int(argv[5])
        schema = parse_schema(json.load(open(schema_file)))
        header = single_object_header(schema)

        def decode(m):
            value = m.value()
            if value[:10] != header:
                raise SystemExit(f"header {value[:10].hex()} is not fastavro's {header.hex()}")
            return fastavro.schemaless_reader(io.BytesIO(value[10:]), schema)
        consume(bootstrap, topic, count, decode)
    elif command == "produce-single-object":
        bootstrap, topic, schema_file, input_file = argv[2:6]
        schema = parse_schema(json.load(open(schema_file)))
        header = single_object_header(schema)

        def encode(record):
            out = io.BytesIO()
            out.write(header)
            fastavro.schemaless_writer(out, schema, record)
            return out.getvalue()
        produce(bootstrap, topic, open(input_file), encode)
    elif command == "consume-azure":
        bootstrap, topic, host, count = argv[2], argv[3], argv[4], int(argv[5])
        encoder = azure_encoder(host)

        def decode(m):
            content_type = dict(m.headers() or [])["content-type"].decode()
            return encoder.decode({"content": m.value(), "content_type": content_type})
        consume(bootstrap, topic, count, decode)
    elif command == "produce-azure":
        bootstrap, topic, host, group, schema_file, input_file = argv[2:8]
        schema_str = open(schema_file).read()
        encoder = azure_encoder(host, group)
        p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
        failures = []
        for line in open(input_file):
            record = to_record(line)
            message = encoder.encode(record, schema=schema_str)
            p.produce(topic, key=record["sensor_id"].encode(), value=message["content"],
                      headers=[("content-type", message["content_type"].encode())],
                      on_delivery=lambda err, msg: err and failures.append(err))
            p.poll(0)
        p.flush(60)
        if failures:
            raise SystemExit(f"{len(failures)} deliveries failed: {failures[0]}")
    elif command == "produce-raw":
        bootstrap, topic = argv[2], argv[3]
        p = Producer({"bootstrap.servers": bootstrap})
        for h in argv[4:]:
            p.produce(topic, key=b"raw", value=bytes.fromhex(h), headers=[("origin", b"interop")])
        if p.flush(30):
            raise SystemExit("raw events not delivered")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
