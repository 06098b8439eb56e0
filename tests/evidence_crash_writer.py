"""Child process of tests/test_evidence_crash.py: uploads photos through the evidence use case
(cleaning, blob store, event) from several threads until it is killed.

    python -m tests.evidence_crash_writer SEED [--threads N]

The database and the blob store come from the environment (LIANXI_DATABASE_URL,
LIANXI_EVIDENCE_DIR or LIANXI_EVIDENCE_S3_*). Prints ``READY``, then ``ACK <digest>`` once
``upload_evidence`` returned, so the parent knows exactly which uploads were acknowledged."""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import threading
from datetime import UTC, datetime

from PIL import Image

from services.kernel.principal import Principal
from services.platform import Platform

_lock = threading.Lock()


def say(line: str) -> None:
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def noisy_photo(rng: random.Random) -> bytes:
    """A photo whose noise makes it large (about 0.5-1 MB) and unlike any other."""
    w, h = rng.randint(500, 800), rng.randint(400, 600)
    image = Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def upload_forever(platform: Platform, seed: str, worker: int) -> None:
    rng = random.Random(f"{seed}-{worker}")
    principal = Principal(token_id=f"crash-{worker}", agency="fire-rescue", role="liaison", label="crash-uploader")
    try:
        while True:
            [done] = platform.app.upload_evidence(principal, platform.blobs, files=[(noisy_photo(rng), "现场.jpg")],
                                                  max_bytes=10 * 1024 * 1024, now=datetime.now(UTC))
            say(f"ACK {done.digest}")
    except BaseException as e:  # the parent must see a writer that died on its own
        say(f"ERROR {type(e).__name__}: {e}")
        os._exit(3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seed")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    platform = Platform(group_commit=True)
    for worker in range(args.threads):
        threading.Thread(target=upload_forever, args=(platform, args.seed, worker), daemon=True).start()
    say("READY")
    threading.Event().wait()


if __name__ == "__main__":
    main()
