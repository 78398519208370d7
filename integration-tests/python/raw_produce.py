"""Produce one record with arbitrary header bytes, speaking the Kafka protocol directly.

Client libraries only write header keys they can encode as text; a hostile or buggy producer
can write any bytes. This writes one RecordBatch (v2, CRC-32C) with a Produce request v3, so
the tests can put a header key that is not UTF-8 on a topic.

usage: raw_produce.py HOST:PORT TOPIC PARTITION HEADER_KEY_HEX VALUE
"""
import socket
import struct
import sys
import time


def crc32c(data: bytes) -> int:
    table = crc32c.table
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _table():
    out = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        out.append(c)
    return out


crc32c.table = _table()


def varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = z & 0x7F
        z >>= 7
        if z == 0:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def record(value: bytes, header_key: bytes) -> bytes:
    body = (
        b"\x00"  # attributes
        + varint(0)  # timestamp delta
        + varint(0)  # offset delta
        + varint(-1)  # null key
        + varint(len(value)) + value
        + varint(1)  # one header
        + varint(len(header_key)) + header_key
        + varint(1) + b"v"
    )
    return varint(len(body)) + body


def batch(value: bytes, header_key: bytes) -> bytes:
    now = int(time.time() * 1000)
    after_crc = (
        struct.pack(">hiqqqhi", 0, 0, now, now, -1, -1, -1)  # attributes .. base sequence
        + struct.pack(">i", 1)
        + record(value, header_key)
    )
    after_length = struct.pack(">ibI", -1, 2, crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(after_length)) + after_length


def string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    topic, partition = sys.argv[2], int(sys.argv[3])
    header_key = bytes.fromhex(sys.argv[4])
    value = sys.argv[5].encode()
    records = batch(value, header_key)
    body = (
        struct.pack(">h", -1)  # transactional id: null
        + struct.pack(">hi", 1, 10000)  # acks=1, timeout
        + struct.pack(">i", 1) + string(topic)
        + struct.pack(">i", 1) + struct.pack(">i", partition)
        + struct.pack(">i", len(records)) + records
    )
    request = struct.pack(">hhi", 0, 3, 1) + string("raw-produce") + body
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", s.recv(4))[0]
        response = b""
        while len(response) < size:
            response += s.recv(size - len(response))
    # correlation id, topics[1], name, partitions[1], partition, error code
    offset = 4 + 4
    name_len = struct.unpack(">h", response[offset:offset + 2])[0]
    offset += 2 + name_len + 4 + 4
    error = struct.unpack(">h", response[offset:offset + 2])[0]
    if error != 0:
        sys.exit(f"produce failed with Kafka error code {error}")


if __name__ == "__main__":
    main()
