#!/usr/bin/env python3
"""A fault-injecting proxy in front of a DynamoDB-API server, for the retry tests.

    fault_proxy.py LISTEN_PORT UPSTREAM_URL FAULT_RATE SEED

Every request is forwarded to UPSTREAM_URL, except that a FAULT_RATE share of BatchWriteItem
requests (chosen by a seeded random draw) fail in one of two ways, alternately:
  * throttled: answered 400 ProvisionedThroughputExceededException, nothing forwarded;
  * partial:   only the first part of the items is forwarded; the rest is answered back as
               UnprocessedItems, as DynamoDB does when a partition is over its capacity.
GET /__stats answers the counts as JSON: requests, throttled, partial, unprocessed_items.
"""
import json
import random
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, RATE, SEED = int(sys.argv[1]), sys.argv[2].rstrip("/"), float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(SEED)
lock = threading.Lock()
stats = {"requests": 0, "batch_writes": 0, "throttled": 0, "partial": 0, "unprocessed_items": 0}
HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


def forward(handler, body):
    req = urllib.request.Request(UPSTREAM + handler.path, data=body, method=handler.command)
    for k, v in handler.headers.items():
        if k.lower() not in HOP:
            req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            if k.lower() not in HOP and k.lower() != "x-amz-crc32":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__stats":
            with lock:
                body = json.dumps(stats).encode()
            self.reply(200, body, {"Content-Type": "application/json"})
            return
        status, headers, body = forward(self, None)
        self.reply(status, body, dict(headers.items()))

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        target = self.headers.get("X-Amz-Target", "")
        fault = None
        with lock:
            stats["requests"] += 1
            if target.endswith(".BatchWriteItem"):
                stats["batch_writes"] += 1
                if rng.random() < RATE:
                    fault = "throttled" if (stats["throttled"] + stats["partial"]) % 2 == 0 else "partial"
        if fault == "throttled":
            with lock:
                stats["throttled"] += 1
            err = {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded (injected)",
            }
            self.reply(400, json.dumps(err).encode(), {"Content-Type": "application/x-amz-json-1.0"})
            return
        if fault == "partial":
            req = json.loads(body)
            (table, items), = req["RequestItems"].items()
            if len(items) > 1:
                keep = len(items) // 2
                req["RequestItems"][table] = items[:keep]
                status, headers, out = forward(self, json.dumps(req).encode())
                if status == 200:
                    resp = json.loads(out)
                    left = resp.setdefault("UnprocessedItems", {}).setdefault(table, [])
                    left.extend(items[keep:])
                    with lock:
                        stats["partial"] += 1
                        stats["unprocessed_items"] += len(items) - keep
                    out = json.dumps(resp).encode()
                self.reply(status, out, dict(headers.items()))
                return
        status, headers, out = forward(self, body)
        self.reply(status, out, dict(headers.items()))


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", LISTEN), Handler)
print("listening", flush=True)
server.serve_forever()
