"""The media store and the whole ranking graph on S3: s3fs against moto's server on loopback."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import boto3
import pytest

from shorts_pipeline.render.inspect import inspect_video
from shorts_pipeline.resources.catalog import CatalogResource
from shorts_pipeline.resources.media_store import MediaStoreError, MediaStoreResource
from tests.helpers import fast_settings, materialize_project, project_resources

SECRET = os.environ.get("SHORTS_TEST_S3_SECRET", "s3cr3t-never-printed")


def _objects(endpoint: str, bucket: str) -> dict[str, int]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def test_round_trip_and_presigned_url(bucket, s3_endpoint, tmp_path):
    store = MediaStoreResource(url=f"s3://{bucket}/media")
    src = tmp_path / "clip.bin"
    src.write_bytes(os.urandom(300_000))
    store.put(src, "projects/p/clip.bin")
    assert _objects(s3_endpoint, bucket) == {"media/projects/p/clip.bin": 300_000}
    assert store.exists("projects/p/clip.bin") and store.size("projects/p/clip.bin") == 300_000
    assert store.sha256("projects/p/clip.bin") == hashlib.sha256(src.read_bytes()).hexdigest()
    local = store.local_path("projects/p/clip.bin")
    assert local.read_bytes() == src.read_bytes() and not store.is_local
    url = store.url_for("projects/p/clip.bin")
    assert url.startswith(s3_endpoint) and "Signature" in url and SECRET not in url
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == src.read_bytes()
    assert "write, read back" not in store.check()  # returns where it is
    assert bucket in store.check()


def test_large_file_goes_up_in_parts(bucket, s3_endpoint, tmp_path):
    src = tmp_path / "big.mp4"
    with src.open("wb") as f:  # 70 MB: above s3fs's 50 MB part size
        for _ in range(70):
            f.write(os.urandom(1_000_000))
    store = MediaStoreResource(url=f"s3://{bucket}/media")
    store.put(src, "big.mp4")
    head = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").head_object(
        Bucket=bucket, Key="media/big.mp4"
    )
    assert head["ContentLength"] == 70_000_000
    assert "-" in head["ETag"], "a multipart upload has an ETag with a part count"


def test_missing_bucket_names_bucket_and_endpoint(bucket, s3_endpoint, tmp_path):
    src = tmp_path / "f.txt"
    src.write_text("x")
    store = MediaStoreResource(url="s3://no-such-bucket-here/media")
    with pytest.raises(MediaStoreError) as err:
        store.put(src, "f.txt")
    message = str(err.value)
    assert "no-such-bucket-here" in message and s3_endpoint in message
    assert "bucket does not exist" in message and SECRET not in message


def test_missing_credentials_say_which_variables(s3_endpoint, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_endpoint)
    store = MediaStoreResource(url="s3://whatever-bucket/media")
    with pytest.raises(MediaStoreError, match="no credentials: set AWS_ACCESS_KEY_ID"):
        store.exists("x")


def test_refused_credentials_are_reported_without_the_secret(
    bucket, s3_endpoint, monkeypatch, tmp_path
):
    import moto.settings

    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    src = tmp_path / "f.txt"
    src.write_text("x")
    with pytest.raises(MediaStoreError) as err:
        MediaStoreResource(url=f"s3://{bucket}/media").put(src, "f.txt")
    message = str(err.value)
    assert "credentials were refused" in message or "access denied" in message
    assert bucket in message and SECRET not in message


@pytest.mark.slow
def test_ranking_graph_with_media_on_s3(bucket, s3_endpoint, clip_library, shorts_home):
    settings = fast_settings(count=2)
    spec = CatalogResource().add_project("On S3", keywords=["football"], settings=settings)
    result = materialize_project(
        spec.key, project_resources(clip_library, media_url=f"s3://{bucket}/media")
    )
    assert result.success
    assert all(c.passed for c in result.get_asset_check_evaluations())
    objects = _objects(s3_endpoint, bucket)
    prefix = f"media/projects/{spec.key}/"
    assert {f"{prefix}video.mp4", f"{prefix}thumbnail.jpg", f"{prefix}slides/title.png"} <= set(
        objects
    )
    assert sum(1 for k in objects if k.startswith("media/clips/")) == 2
    assert not (shorts_home / "media").exists(), "nothing may land in the local media folder"
    upload = result.output_for_node("upload")
    assert upload.url.startswith(s3_endpoint)
    downloaded = Path(shorts_home / "fetched.mp4")
    with urllib.request.urlopen(upload.url, timeout=30) as resp:
        downloaded.write_bytes(resp.read())
    assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == upload.sha256
    facts = inspect_video(downloaded, measure_audio=False)
    assert (facts.width, facts.height) == (1080, 1920)
