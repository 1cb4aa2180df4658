"""A loopback HTTP server that answers like the cloud providers, from scripted replies.

The real providers cannot be reached from here, so tests point the real clients (boto3/botocore, requests)
at this server. It speaks each provider's wire protocol:

* AWS JSON 1.1 (Rekognition): ``POST /`` with ``X-Amz-Target: RekognitionService.<Operation>``;
* Smithy RPC v2 CBOR (Transcribe, as recent botocore releases send it; older ones use AWS JSON 1.1): ``POST
/service/Transcribe/operation/<Op>``;
* REST + JSON (OpenAI and OpenAI-compatible endpoints): ``POST /v1/...`` with multipart or JSON bodies.

Every scripted AWS reply is validated against the operation's output shape in botocore's service model
before it is served (what botocore's Stubber checks), and AWS errors use the documented error shapes, so
the clients parse them exactly as they would parse AWS's. Replies are queued per operation; the last one
repeats. A reply may be a callable that sees the request (to emulate a side effect such as Transcribe
writing its transcript to S3).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

import botocore.session
import cbor2
from botocore.validate import ParamValidator

SERVICES = {"RekognitionService": "rekognition", "Transcribe": "transcribe"}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def aws_error(code: str, message: str, status: int = 400) -> Reply:
    return Reply(status, {"__type": code, "Message": message})


@dataclass
class Request:
    key: str  # "rekognition:StartSegmentDetection" or "POST /v1/audio/transcriptions"
    headers: dict[str, str]
    body: Any  # parsed JSON / CBOR, or raw bytes for multipart
    raw: bytes
    at: float


Script = Union[Reply, dict, Callable[[Request], Union[Reply, dict]]]


class ReplayServer:
    def __init__(self) -> None:
        self.queues: dict[str, list[Script]] = {}
        self.requests: list[Request] = []
        self._session = botocore.session.get_session()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                server._handle(self)

            do_GET = do_POST  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # scripting ----------------------------------------------------------------------------------------
    def add(self, key: str, *replies: Script) -> None:
        """Queue replies for ``key``; AWS replies are checked against botocore's output shape now."""
        for r in replies:
            if ":" in key and not callable(r):
                self.validate(key, r)
        self.queues.setdefault(key, []).extend(replies)

    def validate(self, key: str, reply: Union[Reply, dict]) -> None:
        service, op = key.split(":")
        body = reply.body if isinstance(reply, Reply) else reply
        if isinstance(reply, Reply) and reply.status >= 400:
            return
        model = self._session.get_service_model(service).operation_model(op)
        report = ParamValidator().validate(body, model.output_shape)
        if report.has_errors():
            raise AssertionError(f"scripted {key} reply does not match AWS's output shape:\n{report.generate_report()}")

    def calls(self, key: str) -> list[Request]:
        return [r for r in self.requests if r.key == key]

    # serving ------------------------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in h.headers.items()}
        target = headers.get("x-amz-target")
        cbor = headers.get("smithy-protocol") == "rpc-v2-cbor"
        if target:
            prefix, op = target.split(".", 1)
            key, body = f"{SERVICES.get(prefix, prefix)}:{op}", json.loads(raw or b"{}")
        elif cbor:
            parts = h.path.strip("/").split("/")  # service/<Service>/operation/<Op>
            key, body = f"{SERVICES.get(parts[1], parts[1].lower())}:{parts[3]}", cbor2.loads(raw) if raw else {}
        else:
            key = f"{h.command} {h.path.split('?')[0]}"
            body = json.loads(raw) if headers.get("content-type", "").startswith("application/json") else raw
        req = Request(key, headers, body, raw, time.monotonic())
        with self._lock:
            self.requests.append(req)
            queue = self.queues.get(key)
            script = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else None
        if script is None:
            reply = Reply(501, {"__type": "NotImplemented", "Message": f"no reply scripted for {key}"})
        else:
            reply = script(req) if callable(script) else script
            reply = reply if isinstance(reply, Reply) else Reply(200, reply)
            if callable(script) and ":" in key and reply.status < 400:
                self.validate(key, reply)
        self._send(h, reply, aws_json=bool(target), cbor=cbor)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, reply: Reply, *, aws_json: bool, cbor: bool) -> None:
        if cbor:
            body = dict(reply.body or {})
            if reply.status >= 400 and "#" not in body.get("__type", "#"):
                body["__type"] = "com.amazonaws.transcribe#" + body["__type"]
            data, ctype = cbor2.dumps(body, datetime_as_timestamp=True, timezone=None), "application/cbor"
        elif aws_json:
            data, ctype = json.dumps(reply.body or {}, default=_ts).encode(), "application/x-amz-json-1.1"
        else:
            data, ctype = json.dumps(reply.body).encode(), "application/json"
        h.send_response(reply.status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        if cbor:
            h.send_header("smithy-protocol", "rpc-v2-cbor")
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


def _ts(value: Any) -> Any:
    if hasattr(value, "timestamp"):
        return value.timestamp()
    raise TypeError(f"cannot encode {type(value).__name__}")
