"""moto's own S3 server (ThreadedMotoServer, what moto_server runs) plus one control
endpoint that makes objects older: an S3 object's age is its LastModified, which no S3
request can set, and example manifests keep a minAge of minutes.

    python3 test/integration/support/moto-aged.py PORT CONTROL_PORT

POST http://127.0.0.1:CONTROL_PORT/age {"bucket": NAME, "seconds": N} moves the
LastModified of every object (every version) in the bucket N seconds back. Answers
{"ok": true, "objects": count}. The server is private to the test that starts it.
"""
import datetime
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

port, control_port = int(sys.argv[1]), int(sys.argv[2])
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        try:
            bucket = s3_backends[DEFAULT_ACCOUNT_ID]["aws"].get_bucket(body["bucket"])
            delta = datetime.timedelta(seconds=float(body["seconds"]))
            count = 0
            for name in list(bucket.keys.keys()):
                for key in bucket.keys.getlist(name):
                    key.last_modified = key.last_modified - delta
                    count += 1
            answer, code = {"ok": True, "objects": count}, 200
        except Exception as error:  # reported to the test
            answer, code = {"ok": False, "error": repr(error)}, 500
        data = json.dumps(answer).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


print("ready", flush=True)
ThreadingHTTPServer(("127.0.0.1", control_port), Control).serve_forever()
