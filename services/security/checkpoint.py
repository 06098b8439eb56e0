"""Signed checkpoints of the hash chain (services/security/hashchain.py).

A checkpoint states "at log position P the chain's link was H, at time T", signed with
Ed25519. The signing key lives in a file outside the database (``LIANXI_CHECKPOINT_KEY``,
default ``./var/checkpoint.key``, created on first use with mode 0600), so someone who can
rewrite the database cannot sign a checkpoint for the rewritten log. The checkpoint file is
meant to be kept off the platform (printed, mailed to the auditors, stored elsewhere);
``lianxi verify --checkpoint FILE`` then proves the log still reaches it unchanged.

A checkpoint names the key that signed it, so its signature alone proves nothing: anyone can
sign one. It is trusted only when signed by a key pinned on the verifying machine: ``verify
--public-key KEY``, the setting ``LIANXI_CHECKPOINT_TRUSTED_KEY``, or (on the platform's own
machine) the signing key file. ``lianxi checkpoint --public-key-out FILE`` exports the public
key to pin; without any pinned key, ``verify`` says the signature was not checked against a
trusted key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.security import hashchain
from services.security.hashchain import Expect, Head, Verification, verify
from services.settings import Settings

KEY_ENV = "LIANXI_CHECKPOINT_KEY"
FORMAT = "lianxi-checkpoint/1"
_DOMAIN = b"lianxi-checkpoint/1\n"  # signatures over checkpoints cannot be replayed as anything else


class CheckpointError(Exception):
    """A checkpoint or key that cannot be used; the message is one readable line."""


def key_path() -> Path:
    # Read afresh: the key is looked up once per checkpoint, and tests point it elsewhere.
    return Path(Settings().checkpoint_key)


def load_key(path: Path | None = None, *, create: bool = True) -> Ed25519PrivateKey:
    """The signing key; generated on first use (0600, never overwritten)."""
    path = path or key_path()
    if not path.exists():
        if not create:
            raise CheckpointError(f"no checkpoint key at {path} (set {KEY_ENV})")
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_key(path, create=False)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise CheckpointError(f"checkpoint key {path} is readable by others (mode {mode:o}); chmod 600 it")
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint key {path} is not a PEM private key: {e}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise CheckpointError(f"checkpoint key {path} is not an Ed25519 key")
    return loaded


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def utc_iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise CheckpointError("checkpoint time must be timezone-aware")
    utc = moment.astimezone(UTC)  # the year zero-padded: strftime's %Y gives "999" on glibc
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Checkpoint:
    position: int
    head_hash: str  # hex of the link at `position`
    time: str  # UTC, fixed width
    public_key: str  # hex, raw Ed25519 public key
    signature: str  # hex
    format: str = FORMAT

    @staticmethod
    def payload(position: int, head_hash: str, time: str) -> bytes:
        body = {"format": FORMAT, "position": position, "head_hash": head_hash, "time": time}
        return _DOMAIN + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.as_dict(), option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"

    @property
    def expect(self) -> Expect:
        return Expect(self.position, bytes.fromhex(self.head_hash))

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict):
            raise CheckpointError("a checkpoint is a JSON object")
        fields = {"position": int, "head_hash": str, "time": str, "public_key": str, "signature": str}
        for name, kind in fields.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CheckpointError(f"checkpoint field {name!r} is missing or not a {kind.__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise CheckpointError(f"checkpoint format {data.get('format')!r} is not {FORMAT}")
        for name, size in (("head_hash", 32), ("public_key", 32), ("signature", 64)):
            try:
                if len(bytes.fromhex(data[name])) != size:
                    raise ValueError
            except ValueError:
                raise CheckpointError(f"checkpoint field {name!r} is not {size} bytes of hex") from None
        return cls(position=data["position"], head_hash=data["head_hash"], time=data["time"],
                   public_key=data["public_key"], signature=data["signature"])

    @classmethod
    def from_json(cls, text: bytes | str) -> Checkpoint:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            raise CheckpointError(f"checkpoint is not JSON: {e}") from None
        if isinstance(data, dict) and str(data.get("format", "")).startswith("lianxi-review"):
            data = data.get("checkpoint")  # a review carries the checkpoint it was computed at
        return cls.from_dict(data)

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            return cls.from_json(path.read_bytes())
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint file {path} not found") from None

    def check_signature(self, trusted_public_key: str | None = None) -> None:
        """Raises unless the signature is valid, and (when given) made by the trusted key."""
        if trusted_public_key is not None and trusted_public_key != self.public_key:
            raise CheckpointError(f"checkpoint is signed by key {self.public_key[:16]}…, "
                                  f"not by this platform's key {trusted_public_key[:16]}…")
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))
        try:
            public.verify(bytes.fromhex(self.signature), self.payload(self.position, self.head_hash, self.time))
        except InvalidSignature:
            raise CheckpointError("checkpoint signature is invalid (the file was altered)") from None


def sign(head: Head, time: datetime, key: Ed25519PrivateKey) -> Checkpoint:
    when = utc_iso(time)
    head_hex = head.hash.hex()
    signature = key.sign(Checkpoint.payload(head.position, head_hex, when)).hex()  # Ed25519: deterministic
    return Checkpoint(position=head.position, head_hash=head_hex, time=when, public_key=public_hex(key),
                      signature=signature)


def public_pem(key: Ed25519PrivateKey) -> bytes:
    """The public key to pin on a verifying machine (SubjectPublicKeyInfo PEM)."""
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _hex_key(text: str) -> str | None:
    text = text.strip().lower()
    return text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else None


def read_public_key(value: str) -> str:
    """A pinned public key as hex: 64 hex digits, or a file holding them or a PEM public key."""
    direct = _hex_key(value)
    if direct is not None:
        return direct
    path = Path(value)
    if not path.is_file():
        raise CheckpointError(f"public key {value!r} is neither 64 hex digits nor a readable file")
    data = path.read_bytes()
    in_file = _hex_key(data.decode("ascii", "replace"))
    if in_file is not None:
        return in_file
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise CheckpointError(f"public key file {path} holds neither 64 hex digits nor a PEM public key: {e}") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise CheckpointError(f"public key file {path} is not an Ed25519 key")
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


@dataclass(frozen=True)
class Trust:
    """The key a checkpoint must be signed by, and where it was pinned (None: nowhere)."""

    public_key: str | None
    source: str

    def describe(self) -> str:
        if self.public_key is None:
            return ("WARNING: the checkpoint's signature was NOT checked against a trusted key (anyone can sign a "
                    "checkpoint); pin the platform's key with --public-key or LIANXI_CHECKPOINT_TRUSTED_KEY")
        return f"signed by the trusted key {self.public_key[:16]}… ({self.source})"


def trusted_key(pinned: str | None = None) -> Trust:
    """The key to trust: ``pinned`` (verify --public-key), else the configured trusted key,
    else this machine's signing key file (never created here)."""
    if pinned:
        return Trust(read_public_key(pinned), "pinned with --public-key")
    configured = Settings().checkpoint_trusted_key
    if configured:
        return Trust(read_public_key(configured), "LIANXI_CHECKPOINT_TRUSTED_KEY")
    path = key_path()
    if path.exists():
        return Trust(public_hex(load_key(path, create=False)), f"this machine's signing key {path}")
    return Trust(None, "none")


def checkpoint_now(platform: Any, *, now: datetime, progress: Any = None) -> tuple[Checkpoint, Verification]:
    """Brings the chain to the head, verifies the whole log, and signs its head. Refuses to
    sign a log that fails verification."""
    hashchain.catch_up(platform.write_engine)
    result = verify(platform.read_engine, progress=progress)
    if not result.ok:
        raise CheckpointError(f"refusing to sign: {result.describe()}")
    return sign(result.head, now, load_key()), result


def verify_against(
    platform: Any, checkpoint: Checkpoint | None, *, trusted_public_key: str | None = None, progress: Any = None,
) -> Verification:
    """Brings the chain to the head and recomputes it, checking the checkpoint (signature
    first) when given."""
    if checkpoint is not None:
        checkpoint.check_signature(trusted_public_key)
    hashchain.catch_up(platform.write_engine)
    return verify(platform.read_engine, expect=checkpoint.expect if checkpoint else None, progress=progress)
