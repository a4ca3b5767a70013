#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/seeds/<target>/) from the payloads the tests
use: a sample of Sentry's grouping inputs (crates/shrike-grouping/tests/fixtures), wrapped in
envelopes, and those envelopes in every encoding ingest decodes. Run it again after changing the
sample; the seeds are committed so that CI starts from them."""

import base64, gzip, hashlib, json, pathlib, zlib

here = pathlib.Path(__file__).resolve().parent
inputs = here.parent / "crates/shrike-grouping/tests/fixtures/sentry-grouping/inputs"
seeds = here / "seeds"

# The smallest inputs of each platform: varied, and cheap for the fuzzer to mutate.
events = {}
for path in sorted(inputs.glob("*.json"), key=lambda p: p.stat().st_size):
    platform = json.loads(path.read_text()).get("platform", "other")
    if len(events) < 24 and sum(1 for p in events.values() if p == platform) < 4:
        events[path] = platform
payloads = [p.read_bytes() for p in events]
payloads.append(b'{"message":"hello","level":"error","tags":{"a":"b"},"user":{"id":"1"}}')

def envelope(event):
    return (b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"http://k@h/1"}\n'
            b'{"type":"event"}\n' + event + b"\n")

envelopes = [envelope(p) for p in payloads] + [
    b'{}\n{"type":"check_in"}\n{"check_in_id":"83a7c03ed0a04e1b97e2e3b18d38f244",'
    b'"monitor_slug":"nightly","status":"ok","monitor_config":{"schedule":{"type":"crontab",'
    b'"value":"0 * * * *"}}}\n',
    b'{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc"}\n{"type":"attachment","length":5,'
    b'"filename":"a.txt"}\nhello\n{"type":"session"}\n{"sid":"x"}\n',
    b'{}\n{"type":"client_report"}\n{"discarded_events":[{"reason":"queue_overflow",'
    b'"category":"error","quantity":3}]}\n',
]

def write(target, data):
    folder = seeds / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)

for data in envelopes:
    write("envelope", data)
    write("decode", b"\x00" + data)
    write("decode", b"\x01" + gzip.compress(data, mtime=0))
    write("decode", b"\x02" + zlib.compress(data))
    deflate = zlib.compressobj(wbits=-15)
    write("decode", b"\x02" + deflate.compress(data) + deflate.flush())
for data in payloads:
    write("normalize", data)
    write("decode", b"\x05" + base64.b64encode(zlib.compress(data)))
    write("decode", b"\x05" + data)
