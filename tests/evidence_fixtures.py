"""Evidence test helpers: photos with EXIF GPS made with Pillow, and a real S3-wire server
(moto's server mode, on loopback) for the S3 backend."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

GPS_IFD = 0x8825
S3_KEYS = {"evidence_s3_access_key": "testing", "evidence_s3_secret_key": "testing", "evidence_s3_region": "us-east-1"}


def photo_with_gps(colour: str = "red", size: tuple[int, int] = (640, 480), orientation: int = 1) -> bytes:
    """A JPEG whose EXIF carries GPS coordinates, a camera serial and an orientation."""
    image = Image.new("RGB", size, colour)
    image.paste("blue", (0, 0, size[0] // 4, size[1] // 4))  # a corner that shows the orientation
    exif = Image.Exif()
    exif[0x010F] = "Canon"  # Make
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA431] = "SERIAL-0042"  # BodySerialNumber
    exif[GPS_IFD] = {1: "N", 2: (43.0, 51.0, 12.5), 3: "E", 4: (113.0, 38.0, 1.0)}
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    return buf.getvalue()


def metadata_of(data: bytes) -> dict[str, Any]:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    return {"exif": dict(exif), "gps": dict(exif.get_ifd(GPS_IFD)), "info": set(image.info),
            "size": image.size, "format": image.format}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server (the real wire protocol, in a thread on loopback) for the session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def new_bucket(endpoint: str, name: str) -> dict[str, Any]:
    """A fresh bucket and the settings that point the platform at it."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket=name)
    return {"evidence_s3_bucket": name, "evidence_s3_endpoint": endpoint, **S3_KEYS}
