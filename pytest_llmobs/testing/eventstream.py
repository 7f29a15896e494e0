"""AWS event-stream frames for the fake provider server and tests: the shipped codec
(`pytest_llmobs.providers.eventstream`), under the name the tests have always used."""

from ..providers.eventstream import (
    chunk_frame,
    decode_frame,
    encode_frame,
    event_frame,
    exception_frame,
    split_frames,
)

__all__ = [
    "chunk_frame",
    "decode_frame",
    "encode_frame",
    "event_frame",
    "exception_frame",
    "split_frames",
]
