"""The `.enc` file format, and writing it so that plaintext never reaches the disk.

    b"LLMOBS-ENC"  version (1 byte)  header length (4 bytes, big endian)  header (JSON)
    chunk 0 … chunk n: AES-256-GCM(plaintext ≤ 64 KiB) + 16-byte tag

The header names the algorithm, chunk size, a random 7-byte nonce prefix and the wrapped data
key (`{"source", "id", "wrapped"}` from the `KeySource`). Each chunk's nonce is the prefix,
the chunk's counter (4 bytes) and a last-chunk flag (1 byte), and the whole preamble is its
associated data: chunks can't be reordered, dropped, cut off at the end or moved to another
file, and the header can't be edited, without decryption failing (the STREAM construction,
as in age and Tink's streaming AEAD). Memory stays at one chunk either way.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from ..atomic import AtomicFile
from .keys import KeySource, KeySourceError, aesgcm

SUFFIX = ".enc"
MAGIC = b"LLMOBS-ENC"
VERSION = 1
ALGORITHM = "AES-256-GCM-STREAM"
CHUNK = 64 * 1024
TAG = 16
_MAX_HEADER = 64 * 1024


class DecryptError(Exception):
    """Not an llmobs encrypted file, or one that was damaged, cut short or tampered with."""


class _EncryptingWriter(io.RawIOBase):
    """Buffers one chunk of plaintext in memory; only ciphertext goes to `sink`."""

    def __init__(self, sink: BinaryIO, source: KeySource) -> None:
        super().__init__()
        key, wrapped = source.new_data_key()
        self._aead = aesgcm(key)
        self._prefix = secrets.token_bytes(7)
        header = {"alg": ALGORITHM, "chunk": CHUNK, "nonce": self._prefix.hex(), "key": wrapped}
        self._aad = preamble(header)
        self._sink = sink
        self._buffer = bytearray()
        self._counter = 0
        sink.write(self._aad)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._buffer += view
        while len(self._buffer) > CHUNK:  # keep ≥1 byte back: the last chunk is flagged
            self._emit(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]
        return len(view)

    def close(self) -> None:
        """Write the last (flagged) chunk; the sink stays open for its owner to commit."""
        if not self.closed:
            self._emit(bytes(self._buffer), last=True)
            self._buffer.clear()
        super().close()

    def _emit(self, plaintext: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._counter, last)
        self._sink.write(self._aead.encrypt(nonce, plaintext, self._aad))
        self._counter += 1


class EncryptedAtomicFile(AtomicFile):
    """`AtomicFile` whose content is encrypted on the way to its temporary file; appears as
    `PATH.enc` on commit (removing a plaintext `PATH` left by an unencrypted run)."""

    def __init__(self, path: Path, source: KeySource) -> None:
        self.plain_path = path
        super().__init__(path.with_name(path.name + SUFFIX))
        try:
            writer = _EncryptingWriter(self.binary, source)
        except BaseException:
            self.discard()
            raise
        self._text = io.TextIOWrapper(
            io.BufferedWriter(writer, CHUNK), encoding="utf-8", newline="\n"
        )

    def _close_layers(self) -> None:
        if self._text is not None:
            self._text.close()  # the writer then emits its last chunk into `binary`

    def commit(self) -> Path:
        path = super().commit()
        self.plain_path.unlink(missing_ok=True)
        return path


def preamble(header: dict[str, Any]) -> bytes:
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return MAGIC + bytes([VERSION]) + len(raw).to_bytes(4, "big") + raw


def read_header(stream: BinaryIO, name: str = "input") -> tuple[dict[str, Any], bytes]:
    """The header and the exact preamble bytes (the chunks' associated data)."""
    start = stream.read(len(MAGIC) + 5)
    if len(start) < len(MAGIC) + 5 or not start.startswith(MAGIC):
        raise DecryptError(f"{name}: not an llmobs encrypted file (no {MAGIC.decode()} header)")
    version = start[len(MAGIC)]
    if version != VERSION:
        raise DecryptError(f"{name}: format version {version}; this llmobs reads {VERSION}")
    size = int.from_bytes(start[-4:], "big")
    raw = stream.read(size) if size <= _MAX_HEADER else b""
    try:
        header = json.loads(raw)
        ok = header.get("alg") == ALGORITHM and isinstance(header.get("key"), dict)
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        raise DecryptError(f"{name}: damaged header")
    return header, start + raw


def decrypt_stream(stream: BinaryIO, source: KeySource, name: str = "input") -> Iterator[bytes]:
    """The plaintext chunks; raises before the first one if the key is wrong (KeySourceError)
    and `DecryptError` on the first chunk that does not authenticate."""
    header, aad = read_header(stream, name)
    wrapped = header["key"]
    if wrapped.get("source") != source.scheme:
        raise KeySourceError(
            f"{name}: encrypted with a {wrapped.get('source')!r} key "
            f"({wrapped.get('id')}); the key given is {source.scheme!r}"
        )
    aead = aesgcm(source.data_key(wrapped))
    prefix = bytes.fromhex(header["nonce"])
    size = int(header["chunk"]) + TAG
    return _chunks(stream, aead, prefix, aad, size, name)


def _chunks(
    stream: BinaryIO, aead: Any, prefix: bytes, aad: bytes, size: int, name: str
) -> Iterator[bytes]:
    from cryptography.exceptions import InvalidTag

    block = stream.read(size)
    counter = 0
    while True:
        following = stream.read(size) if len(block) == size else b""
        last = not following
        try:
            yield aead.decrypt(_nonce(prefix, counter, last), block, aad)
        except InvalidTag:
            raise DecryptError(
                f"{name}: chunk {counter} does not authenticate (the file is damaged, "
                "cut short or was changed)"
            ) from None
        if last:
            return
        block, counter = following, counter + 1


class _DecryptingReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes], closing: BinaryIO) -> None:
        super().__init__()
        self._chunks = chunks
        self._closing = closing
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._closing.close()
        super().close()


def open_text(path: Path, source: KeySource) -> IO[str]:
    """A text stream over an encrypted file, decrypted one chunk at a time."""
    raw = path.open("rb")
    try:
        chunks = decrypt_stream(raw, source, str(path))
    except BaseException:
        raw.close()
        raise
    return io.TextIOWrapper(
        io.BufferedReader(_DecryptingReader(chunks, raw), CHUNK), encoding="utf-8"
    )


def read_text(path: Path, source: KeySource) -> str:
    with open_text(path, source) as stream:
        return stream.read()


def decrypt_file(path: Path, output: Path, source: KeySource) -> Path:
    """Decrypt `path` into `output`, atomically: on any error nothing is left behind."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with path.open("rb") as raw:
        chunks = decrypt_stream(raw, source, str(path))  # a wrong key fails before any output
        target = AtomicFile(output)
        try:
            for chunk in chunks:
                target.binary.write(chunk)
        except BaseException:
            target.discard()
            raise
        target.commit()
    return output


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if counter >= 2**32:
        raise DecryptError("file too large for one nonce prefix (2**32 chunks)")
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
