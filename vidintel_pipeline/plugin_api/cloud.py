"""What every cloud plugin needs and no plugin should write twice.

* **Rate limits**: one :class:`TokenBucket` per provider (and region or endpoint) per process, shared by
  every concurrent chunk task, so ten chunks in flight still send at most ``rate`` requests a second.
* **Idempotent job names**: :func:`job_name` derives a provider job's name (or client token) from the
  content and the settings, so a retried run finds the job it already paid for instead of starting another.
* **Polling** with capped exponential backoff and an overall deadline (:func:`poll`).
* **AWS**: clients with botocore's own retries off (our policy retries, so attempts are counted and the
  bucket is honoured), errors mapped to :class:`PluginError` / :class:`RateLimitError`, and staging of a
  chunk or audio file into S3 under the video's own prefix (:func:`stage_in_s3`).
* **Secrets**: plugins read keys from environment variables named in their options, never from the options
  themselves, and every message that leaves a plugin goes through :func:`redact`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
import time
from typing import Any, Awaitable, Callable, Optional, TypeVar

from vidintel_pipeline.engine.cache import file_sha256
from vidintel_pipeline.plugin_api.contracts import PluginError, RateLimitError
from vidintel_pipeline.storage.layout import VideoRef

T = TypeVar("T")


# rate limiting ---------------------------------------------------------------------------------------
class TokenBucket:
    """``rate`` requests per second on average, bursts of up to ``burst``. Safe across event loops and threads."""

    def __init__(self, rate: float, burst: int = 1):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst = float(rate), int(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def _take(self) -> float:
        """Take a token now (0.0) or say how long to wait before one is free."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        while (wait := self._take()) > 0:
            await asyncio.sleep(wait)


_BUCKETS: dict[tuple[str, float, int], TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def rate_limiter(provider: str, rate: float, burst: int = 1) -> TokenBucket:
    """The process-wide bucket for ``provider`` (e.g. ``"rekognition:us-east-1"``)."""
    with _BUCKETS_LOCK:
        return _BUCKETS.setdefault((provider, float(rate), int(burst)), TokenBucket(rate, burst))


# idempotency -----------------------------------------------------------------------------------------
def job_name(prefix: str, *parts: Any, max_len: int = 64) -> str:
    """A stable, provider-safe name (``[A-Za-z0-9-_]``) for the same work: same inputs, same name."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
    head = re.sub(r"[^A-Za-z0-9_-]+", "-", prefix)[: max_len - 25].strip("-")
    return f"{head}-{digest[:24]}"


# polling ---------------------------------------------------------------------------------------------
async def poll(
    check: Callable[[], Awaitable[Optional[T]]],
    *,
    what: str,
    plugin: str,
    first_s: float = 5.0,
    max_s: float = 30.0,
    deadline_s: float = 3600.0,
) -> T:
    """Call ``check`` until it returns a value, waiting ``first_s`` then doubling up to ``max_s``."""
    delay = first_s
    t_end = time.monotonic() + deadline_s
    while True:
        out = await check()
        if out is not None:
            return out
        if time.monotonic() + delay > t_end:
            raise PluginError(f"{what} still running after {deadline_s:g} s", plugin=plugin, retryable=True)
        await asyncio.sleep(delay)
        delay = min(max_s, delay * 2)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call without blocking the other chunk tasks."""
    return await asyncio.to_thread(fn, *args, **kwargs)


# secrets ---------------------------------------------------------------------------------------------
_SECRET_ENV = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._\-]+", re.I)


def secret_values() -> list[str]:
    """Values of environment variables that look like secrets (long enough to be worth hiding)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with every secret-looking env value and bearer token replaced by ``***``."""
    for value in sorted({*secret_values(), *[e for e in extra if e]}, key=len, reverse=True):
        text = text.replace(value, "***")
    return _BEARER.sub(r"\1***", text)


def env_secret(var: str, plugin: str) -> str:
    value = os.environ.get(var, "")
    if not value:
        raise PluginError(f"no credentials: set the environment variable {var}", plugin=plugin)
    return value


# AWS -------------------------------------------------------------------------------------------------
# Errors AWS documents as "slow down / try later": retried with backoff, then a RateLimitError.
AWS_THROTTLING = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalServerErrorException",
}


def aws_client(
    service: str, *, region: Optional[str] = None, endpoint_url: Optional[str] = None, timeout_s: float = 60.0
) -> Any:
    """A boto3 client; credentials and endpoints from the standard AWS environment (``AWS_ENDPOINT_URL_<SERVICE>``)."""
    import boto3
    from botocore.config import Config

    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    cfg = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=min(timeout_s, 10),
        read_timeout=timeout_s,
        user_agent_appid="vidintel",
    )
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url or None, config=cfg)


def aws_error(exc: BaseException, *, plugin: str, what: str) -> PluginError:
    """A botocore error as the PluginError the orchestrator understands (throttling is retryable)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, PluginError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, msg = err.get("Code", "?"), redact(err.get("Message", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in AWS_THROTTLING or status in (429, 500, 502, 503, 504):
            return RateLimitError(f"{what}: {code} {msg}".strip(), plugin=plugin)
        return PluginError(f"{what}: {code} {msg}".strip(), plugin=plugin)
    if isinstance(exc, (BotoConnectionError,)):
        return PluginError(f"{what}: provider unreachable ({redact(str(exc))})", plugin=plugin, retryable=True)
    if isinstance(exc, BotoCoreError):
        return PluginError(f"{what}: {redact(str(exc))}", plugin=plugin)
    return PluginError(f"{what}: {type(exc).__name__}: {redact(str(exc))}", plugin=plugin)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([^/]+)/(.+)", uri or "")
    if not m:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return m.group(1), m.group(2)


def stage_in_s3(
    *,
    local_path: str,
    uri: Optional[str],
    bucket: Optional[str],
    ref: VideoRef,
    folder: str,
    plugin: str,
    client: Any = None,
) -> tuple[str, str]:
    """``(bucket, key)`` of the media in S3: its own object when it already lives there, else an upload.

    Uploads go under the video's own prefix (``projects/{p}/videos/{v}/{folder}/``) and are named by
    content, so a retry re-uses the object instead of uploading again.
    """
    if uri and uri.startswith("s3://"):
        b, key = parse_s3_uri(uri)
        if key.startswith(ref.prefix):
            return b, key
        raise PluginError(f"{uri} lies outside {ref.prefix}: refusing to send another tenant's object", plugin=plugin)
    bucket = bucket or os.environ.get("S3_BUCKET")
    if not bucket:
        raise PluginError("needs the media in S3: set S3_BUCKET or the plugin's staging_bucket option", plugin=plugin)
    if not os.path.isfile(local_path):
        raise PluginError(f"{local_path}: no such file", plugin=plugin)
    digest = file_sha256(local_path)
    key = ref.key(folder, f"staged-{digest[:16]}{os.path.splitext(local_path)[1]}")
    s3 = client or aws_client("s3")
    try:
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
            if head.get("ContentLength") == os.path.getsize(local_path):
                return bucket, key
        except Exception as exc:  # noqa: BLE001 - a 404 is the usual answer
            from botocore.exceptions import ClientError

            if not (
                isinstance(exc, ClientError)
                and exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
            ):
                raise
        s3.upload_file(local_path, bucket, key)
    except Exception as exc:  # noqa: BLE001
        raise aws_error(
            exc, plugin=plugin, what=f"staging {os.path.basename(local_path)} in s3://{bucket}/{key}"
        ) from exc
    return bucket, key


# HTTP APIs (OpenAI and OpenAI-compatible endpoints) -----------------------------------------------------
def http_call(
    method: str,
    url: str,
    *,
    plugin: str,
    what: str,
    api_key: Optional[str] = None,
    timeout_s: float = 120.0,
    json_body: Any = None,
    data: Any = None,
    files: Any = None,
) -> dict[str, Any]:
    """One HTTP request to a JSON API. 429 and 5xx become retryable errors; the key never appears in messages."""
    import requests

    headers = {"User-Agent": "vidintel"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        r = requests.request(method, url, headers=headers, json=json_body, data=data, files=files, timeout=timeout_s)
    except requests.Timeout as exc:
        raise PluginError(
            f"{what}: no answer from {url} within {timeout_s:g} s", plugin=plugin, retryable=True
        ) from exc
    except requests.RequestException as exc:
        raise PluginError(f"{what}: {url} unreachable ({type(exc).__name__})", plugin=plugin, retryable=True) from exc
    if r.status_code >= 400:
        detail = _api_error(r)
        msg = redact(f"{what}: HTTP {r.status_code} from {url}: {detail}", (api_key or "",))
        if r.status_code == 429:
            raise RateLimitError(msg, plugin=plugin)
        if r.status_code in (401, 403):
            raise PluginError(msg + " (check the API key's environment variable)", plugin=plugin)
        raise PluginError(msg, plugin=plugin, retryable=r.status_code >= 500 or r.status_code == 408)
    try:
        return r.json()
    except ValueError as exc:
        raise PluginError(
            f"{what}: {url} answered with non-JSON ({r.text[:120]!r})", plugin=plugin, retryable=True
        ) from exc


def _api_error(r: Any) -> str:
    try:
        err = r.json().get("error", {})
        if isinstance(err, dict):
            return f"{err.get('type') or err.get('code') or ''} {err.get('message', '')}".strip()
        return str(err)
    except Exception:  # noqa: BLE001
        return r.text[:200]
