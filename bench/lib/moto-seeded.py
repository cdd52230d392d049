"""moto's own S3 server (ThreadedMotoServer, the app moto_server runs) plus a seeding
endpoint, so a benchmark can fill a bucket with thousands of objects without sending
thousands of PUTs through the Python HTTP stack: objects are created with the same
backend call a PUT ends in (S3Backend.put_object).

    python bench/lib/moto-seeded.py PORT CONTROL_PORT

POST http://127.0.0.1:CONTROL_PORT/seed  {"bucket", "size", "versioned", "prefix", "owners"}
creates the bucket (versioning enabled when asked) and `size` one-byte objects
`<prefix>owner-<i % owners>/obj-<i>`. Answers {"ok": true, "seconds": …}.
"""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

port, control_port = int(sys.argv[1]), int(sys.argv[2])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()


def backend():
    return s3_backends[DEFAULT_ACCOUNT_ID]["aws"]


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        start = time.monotonic()
        try:
            b = backend()
            bucket = body["bucket"]
            b.create_bucket(bucket, "us-east-1")
            if body.get("versioned"):
                b.put_bucket_versioning(bucket, "Enabled")
            prefix = body.get("prefix", "tmp/")
            owners = int(body.get("owners", 500))
            for i in range(int(body["size"])):
                b.put_object(bucket, f"{prefix}owner-{i % owners}/obj-{i}", b"x")
            answer = {"ok": True, "seconds": time.monotonic() - start}
            code = 200
        except Exception as error:  # report it to the harness
            answer = {"ok": False, "error": repr(error)}
            code = 500
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("127.0.0.1", control_port), Control).serve_forever()
