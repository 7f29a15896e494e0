"""Fake Amazon Bedrock runtime: Converse, ConverseStream, InvokeModel and
InvokeModelWithResponseStream, for Anthropic Messages, Amazon Nova (`messages-v1`), Cohere
Command (`generations`) and Command R (`text`), and Llama-style prompt bodies.

Streams are binary event-stream frames, one per chunk of the chunked response. Point
boto3 at it with `endpoint_url=server.url` (any region, fake credentials).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from . import _api_common as common
from .eventstream import chunk_frame, event_frame
from .provider_server import (
    HEADER_USAGE_OMIT,
    ReceivedRequest,
    Reply,
    _anthropic_body,
    _anthropic_events,
    _Event,
    _forced_tool,
    _input_tokens,
    _max_tokens,
    _rand_id,
    _tool_schemas,
)

if TYPE_CHECKING:
    from .provider_server import _Handler

_PATH = re.compile(
    r"/model/(?P<model>[^/]+)/(?P<action>converse|converse-stream|invoke|invoke-with-response-stream)$"
)
_EVENTSTREAM = "application/vnd.amazon.eventstream"

# status → (error type, message), as Bedrock words them
ERRORS: dict[int, tuple[str, str]] = {
    400: (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    ),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: (
        "ResourceNotFoundException",
        "Could not resolve the foundation model from the provided model identifier.",
    ),
    408: (
        "ModelTimeoutException",
        "Model has timed out in processing the request. Try your request again.",
    ),
    424: ("ModelStreamErrorException", "An error occurred while streaming the response."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "An internal server error occurred. Retry your request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def error_reply(status: int, message: str | None, error_type: str | None) -> Reply:
    """Bedrock names the error in `x-amzn-ErrorType`; the body is only `{"message": …}`."""
    default = ERRORS.get(
        status,
        ("InternalServerException", "Internal error.")
        if status >= 500
        else ("ValidationException", "Bad request."),
    )
    kind = error_type or default[0]
    headers = {
        "content-type": "application/json",
        "x-amzn-requestid": str(uuid.uuid4()),
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    return Reply(status=status, headers=headers, body={"message": message or default[1]})


def serve(handler: _Handler, request: ReceivedRequest) -> bool:
    match = _PATH.search(request.path.rstrip("/"))
    if match is None:
        return False
    if common.rejected(handler, "bedrock", request):
        return True
    body: dict[str, Any] = request.json
    model, action = unquote(match["model"]), match["action"]
    if action.startswith("converse"):
        _converse(handler, request, body, model, stream=action == "converse-stream")
    elif "anthropic_version" in body:
        _anthropic(handler, request, body, model, stream=action != "invoke")
    elif body.get("schemaVersion") == "messages-v1" or (
        isinstance(body.get("messages"), list) and isinstance(body.get("inferenceConfig"), dict)
    ):
        _nova(handler, request, body, model, stream=action != "invoke")
    elif "cohere." in model:
        _cohere(handler, request, body, model, stream=action != "invoke")
    else:
        _prompt_model(handler, request, body, model, stream=action != "invoke")
    return True


def _meta(gen: common.Generation | None = None) -> dict[str, str]:
    meta = {"x-amzn-RequestId": str(uuid.uuid4())}
    if gen is not None:  # InvokeModel reports usage for every model in its headers
        meta["X-Amzn-Bedrock-Input-Token-Count"] = str(gen.call.input_tokens)
        meta["X-Amzn-Bedrock-Output-Token-Count"] = str(gen.call.output_tokens)
        meta["X-Amzn-Bedrock-Invocation-Latency"] = "120"
    return meta


def _stream_headers() -> dict[str, str]:
    return {
        "Content-Type": _EVENTSTREAM,
        "x-amzn-RequestId": str(uuid.uuid4()),
        "X-Amzn-Bedrock-Content-Type": "application/json",
    }


def _metrics(gen: common.Generation) -> dict[str, int]:
    return {
        "inputTokenCount": gen.call.input_tokens,
        "outputTokenCount": gen.call.output_tokens,
        "invocationLatency": 120,
        "firstByteLatency": 40,
    }


# -- Converse ---------------------------------------------------------------------------
def _converse(
    handler: _Handler, request: ReceivedRequest, body: dict[str, Any], model: str, *, stream: bool
) -> None:
    config = body.get("inferenceConfig")
    limit = config.get("maxTokens") if isinstance(config, dict) else None
    schemas, forced = _converse_tools(body)
    gen = common.generation(
        handler,
        "bedrock",
        request,
        model=model,
        input_tokens=common.count_words(body.get("system"), body.get("messages")),
        limit=limit if isinstance(limit, int) else None,
        schemas=schemas,
        forced_tool=forced,
    )
    stop = gen.finish_reason or _stop(gen)
    usage = {
        "inputTokens": gen.call.input_tokens,
        "outputTokens": gen.call.output_tokens,
        "totalTokens": gen.call.total_tokens,
    }
    tool_id = "tooluse_" + _rand_id("", 22)
    if not stream:
        if gen.call.tool is not None:
            content: list[Any] = [
                {
                    "toolUse": {
                        "toolUseId": tool_id,
                        "name": gen.call.tool.name,
                        "input": common.tool_arguments(gen),
                    }
                }
            ]
        else:
            content = [{"text": gen.text}]
        reply = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": usage,
            "metrics": {"latencyMs": 120},
        }
        common.send_whole(handler, gen, _meta(), reply)
        return
    events: list[_Event] = [("pre", event_frame("messageStart", {"role": "assistant"}))]
    where = {"contentBlockIndex": 0}
    if gen.call.tool is not None:
        start = {"toolUse": {"toolUseId": tool_id, "name": gen.call.tool.name}}
        events.append(("pre", event_frame("contentBlockStart", {"start": start, **where})))
        for piece in gen.call.tool.pieces:
            delta = {"delta": {"toolUse": {"input": piece}}, **where}
            events.append(("content", event_frame("contentBlockDelta", delta)))
    else:
        for piece in gen.call.pieces:
            delta = {"delta": {"text": piece}, **where}
            events.append(("content", event_frame("contentBlockDelta", delta)))
    events.append(("post", event_frame("contentBlockStop", where)))
    events.append(("post", event_frame("messageStop", {"stopReason": stop})))
    metadata = {"usage": usage, "metrics": {"latencyMs": 120}}
    events.append(("post", event_frame("metadata", metadata)))
    common.send_stream(handler, gen, _stream_headers(), events)


def _converse_tools(body: Mapping[str, Any]) -> tuple[dict[str, object], str | None]:
    config = body.get("toolConfig")
    if not isinstance(config, dict):
        return {}, None
    schemas: dict[str, object] = {}
    for tool in config.get("tools") or []:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if isinstance(spec, dict) and isinstance(spec.get("name"), str):
            schema = spec.get("inputSchema")
            schemas[spec["name"]] = schema.get("json") if isinstance(schema, dict) else None
    choice = config.get("toolChoice")
    forced: str | None = None
    if isinstance(choice, dict):
        named = choice.get("tool")
        if isinstance(named, dict) and isinstance(named.get("name"), str):
            forced = named["name"]
        elif "any" in choice and schemas:
            forced = next(iter(schemas))
    return schemas, forced


def _stop(gen: common.Generation) -> str:
    if gen.call.tool is not None:
        return "tool_use"
    return "max_tokens" if gen.call.truncated else "end_turn"


# -- InvokeModel: Anthropic Messages ----------------------------------------------------
def _anthropic(
    handler: _Handler, request: ReceivedRequest, body: dict[str, Any], model: str, *, stream: bool
) -> None:
    schemas = _tool_schemas("messages", body)
    gen = common.generation(
        handler,
        "anthropic",
        request,
        model=model,
        input_tokens=_input_tokens("messages", body),
        limit=_max_tokens("messages", body),
        schemas=schemas,
        forced_tool=_forced_tool(body, list(schemas)),
    )
    mid, tool_id = "msg_bdrk_" + _rand_id("", 24), "toolu_bdrk_" + _rand_id("", 24)
    if not stream:
        common.send_whole(handler, gen, _meta(gen), _anthropic_body(gen.call, mid, tool_id))
        return
    events: list[_Event] = []
    for kind, raw in _anthropic_events(gen.call, mid, tool_id):
        data = json.loads(raw.split(b"data: ", 1)[1])
        if data.get("type") == "message_stop":
            data["amazon-bedrock-invocationMetrics"] = _metrics(gen)
        events.append((kind, chunk_frame(data)))
    common.send_stream(handler, gen, _stream_headers(), events)


# -- InvokeModel: prompt-in, generation-out models (Llama's shape) -----------------------
def _prompt_model(
    handler: _Handler, request: ReceivedRequest, body: dict[str, Any], model: str, *, stream: bool
) -> None:
    limit = body.get("max_gen_len")
    gen = common.generation(
        handler,
        "bedrock",
        request,
        model=model,
        input_tokens=common.count_words(body.get("prompt")),
        limit=limit if isinstance(limit, int) else None,
        schemas={},
    )
    stop = gen.finish_reason or ("length" if gen.call.truncated else "stop")
    if not stream:
        reply = {
            "generation": gen.text,
            "prompt_token_count": gen.call.input_tokens,
            "generation_token_count": gen.call.output_tokens,
            "stop_reason": stop,
        }
        common.send_whole(handler, gen, _meta(gen), reply)
        return
    events: list[_Event] = []
    for count, piece in enumerate(gen.call.pieces, start=1):
        chunk = {
            "generation": piece,
            "prompt_token_count": gen.call.input_tokens if count == 1 else None,
            "generation_token_count": count,
            "stop_reason": None,
        }
        events.append(("content", chunk_frame(chunk)))
    final = {
        "generation": "",
        "prompt_token_count": None,
        "generation_token_count": gen.call.output_tokens,
        "stop_reason": stop,
        "amazon-bedrock-invocationMetrics": _metrics(gen),
    }
    events.append(("post", chunk_frame(final)))
    common.send_stream(handler, gen, _stream_headers(), events)


# -- InvokeModel: Amazon Nova (Converse-shaped, usage named as in Converse) ---------------
def _nova(
    handler: _Handler, request: ReceivedRequest, body: dict[str, Any], model: str, *, stream: bool
) -> None:
    config = body.get("inferenceConfig")
    limit = config.get("max_new_tokens") if isinstance(config, dict) else None
    gen = common.generation(
        handler,
        "bedrock",
        request,
        model=model,
        input_tokens=common.count_words(body.get("system"), body.get("messages")),
        limit=limit if isinstance(limit, int) else None,
        schemas={},
    )
    stop = gen.finish_reason or _stop(gen)
    omit = {name.strip() for name in request.headers.get(HEADER_USAGE_OMIT, "").split(",")}
    usage = {
        "inputTokens": gen.call.input_tokens,
        "outputTokens": gen.call.output_tokens,
        "totalTokens": gen.call.total_tokens,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    }
    usage = {key: value for key, value in usage.items() if key not in omit}
    if not stream:
        reply = {
            "output": {"message": {"role": "assistant", "content": [{"text": gen.text}]}},
            "stopReason": stop,
            "usage": usage,
        }
        common.send_whole(handler, gen, _meta(gen), reply)
        return
    where = {"contentBlockIndex": 0}
    events: list[_Event] = [("pre", chunk_frame({"messageStart": {"role": "assistant"}}))]
    for piece in gen.call.pieces:
        delta = {"contentBlockDelta": {"delta": {"text": piece}, **where}}
        events.append(("content", chunk_frame(delta)))
    events.append(("post", chunk_frame({"contentBlockStop": where})))
    events.append(("post", chunk_frame({"messageStop": {"stopReason": stop}})))
    final = {"metadata": {"usage": usage}, "amazon-bedrock-invocationMetrics": _metrics(gen)}
    events.append(("post", chunk_frame(final)))
    common.send_stream(handler, gen, _stream_headers(), events)


# -- InvokeModel: Cohere Command (`prompt` → `generations`) and Command R (`message`) ----
def _cohere(
    handler: _Handler, request: ReceivedRequest, body: dict[str, Any], model: str, *, stream: bool
) -> None:
    limit = body.get("max_tokens")
    chat = "message" in body  # Command R
    gen = common.generation(
        handler,
        "bedrock",
        request,
        model=model,
        input_tokens=common.count_words(body.get("message") if chat else body.get("prompt")),
        limit=limit if isinstance(limit, int) else None,
        schemas={},
    )
    stop = gen.finish_reason or ("MAX_TOKENS" if gen.call.truncated else "COMPLETE")
    generation_id = str(uuid.uuid4())
    if not stream:
        if chat:
            reply: dict[str, Any] = {
                "response_id": str(uuid.uuid4()),
                "text": gen.text,
                "generation_id": generation_id,
                "finish_reason": stop,
                "chat_history": [
                    {"role": "USER", "message": body.get("message")},
                    {"role": "CHATBOT", "message": gen.text},
                ],
            }
        else:
            generation = {"id": generation_id, "text": gen.text, "finish_reason": stop}
            reply = {
                "id": str(uuid.uuid4()),
                "generations": [generation],
                "prompt": body.get("prompt"),
            }
        common.send_whole(handler, gen, _meta(gen), reply)
        return
    events: list[_Event] = []
    for piece in gen.call.pieces:
        if chat:
            chunk: dict[str, Any] = {
                "is_finished": False,
                "event_type": "text-generation",
                "text": piece,
            }
        else:
            chunk = {"generations": [{"id": generation_id, "text": piece, "finish_reason": None}]}
        events.append(("content", chunk_frame(chunk)))
    if chat:
        final: dict[str, Any] = {
            "is_finished": True,
            "event_type": "stream-end",
            "finish_reason": stop,
        }
    else:
        final = {"generations": [{"id": generation_id, "text": "", "finish_reason": stop}]}
    final["amazon-bedrock-invocationMetrics"] = _metrics(gen)
    events.append(("post", chunk_frame(final)))
    common.send_stream(handler, gen, _stream_headers(), events)
