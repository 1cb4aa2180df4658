"""The ``add_video`` job: add a video from the Dagster UI (launchpad config), without the CLI.

It checks the file (a local path on the machine running the code, or an ``s3://`` URI), stores it as the
video's source, registers its partition and leaves the ingest to ``new_video_sensor``, which requests it on its
next tick (30 s; on by default), so the run goes through the queue, its limits and routing like any sensor run.
"""

import tempfile
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field

from vidintel.resources import VidintelStorage
from vidintel_pipeline.errors import UserError


class AddVideoConfig(dg.Config):
    source: str = Field(description="A local path on the code server's machine, or s3://bucket/key.")
    project_id: str = Field(description="The project the video belongs to.")
    video_id: Optional[str] = Field(default=None, description="Default: derived from the file name.")


def _fetch_s3(uri: str, into: Path) -> Path:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    u = urlparse(uri)
    if not u.netloc or not u.path.strip("/"):
        raise UserError(f"{uri}: an S3 URI names a bucket and a key, s3://bucket/key")
    dest = into / Path(u.path).name
    try:
        boto3.client("s3").download_file(u.netloc, u.path.lstrip("/"), str(dest))
    except (BotoCoreError, ClientError) as exc:
        raise UserError(f"{uri}: cannot read it ({exc})") from exc
    return dest


@dg.op(description="Check a video, store it as the source of {project}__{video} and register the partition.")
def store_video(context: dg.OpExecutionContext, config: AddVideoConfig, storage: VidintelStorage) -> dg.Output:
    from vidintel_pipeline.intake import check_local_file, register, store_source

    with tempfile.TemporaryDirectory(prefix="vidintel-add-") as tmp:
        try:
            path = _fetch_s3(config.source, Path(tmp)) if config.source.startswith("s3://") else Path(config.source)
            ref, src = check_local_file(str(path), config.project_id, config.video_id, storage)
            key = store_source(storage.for_video(ref)[0], ref, src)
        except UserError as exc:  # a clear, permanent failure: nothing was stored
            raise dg.Failure(description=f"video not added: {exc}", allow_retries=False) from None
    added = register(context.instance, [ref])
    uri = storage.for_video(ref)[0].uri(key)
    context.log.info(
        f"added {ref.partition_key} ({'new partition' if added else 'partition existed'}): new_video_sensor "
        "requests its ingest on its next tick"
    )
    return dg.Output(
        None,
        metadata={"partition": ref.partition_key, "source": dg.MetadataValue.text(uri), "new_partition": bool(added)},
    )


@dg.job(
    name="add_video",
    description="Add a video from the launchpad: a local path or s3:// URI, a project and an optional video id.",
)
def add_video_job() -> None:
    store_video()
