"""The Bot API's wire format: decoding request parameters, encoding answers.

Clients may send parameters as a query string, ``application/x-www-form-urlencoded``,
``multipart/form-data`` (files) or ``application/json``. In the first three every value
is a string; object-typed parameters (``reply_markup``, ``entities``, ...) are
JSON-serialized strings, numbers and booleans are their JSON text. python-telegram-bot
does exactly this: ``RequestParameter.json_value`` sends ``str`` values unchanged and
``json.dumps`` everything else (see ``telegram/request/_requestparameter.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, web

Params = dict[str, Any]

# Parameters that are JSON-serialized objects or arrays in the Bot API.
JSON_PARAMS = frozenset(
    {
        "reply_markup", "reply_parameters", "link_preview_options", "entities",
        "caption_entities", "allowed_updates", "media", "commands", "scope", "results",
        "permissions", "explanation_entities", "options", "message_ids", "reaction",
        "menu_button", "rights", "suggested_post_parameters", "prices",
    }
)  # fmt: skip
# String parameters whose value could look like JSON ("123", "true") and must stay text.
STRING_PARAMS = frozenset(
    {
        "text", "caption", "parse_mode", "file_id", "callback_query_id", "action",
        "language_code", "inline_message_id", "url", "title", "description",
        "short_description", "name", "query", "emoji", "secret_token", "business_connection_id",
        "message_effect_id", "custom_title", "sticker", "photo", "document", "video", "audio",
        "voice", "animation", "question", "explanation", "payload", "currency",
    }
)  # fmt: skip


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass(frozen=True)
class Described:
    """A method's result with the ``description`` Telegram puts next to some successes
    (``{"ok": true, "result": true, "description": "Webhook was set"}``)."""

    result: Any
    description: str


def bad_request(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: {detail}")


def forbidden(detail: str) -> ApiError:
    return ApiError(403, f"Forbidden: {detail}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429,
        f"Too Many Requests: retry after {retry_after}",
        {"retry_after": retry_after},
    )


def decode_text_value(name: str, raw: str) -> Any:
    """Turn one form/multipart/query value into what the Bot API method receives."""
    if name in STRING_PARAMS:
        return raw
    if name in JSON_PARAMS:
        try:
            return json.loads(raw)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    # Only scalars: a chat_id of "@name" or an action of "typing" stays a string.
    return value if isinstance(value, int | float | bool) or value is None else raw


def decode_json_body(body: Any) -> Params:
    """The parameters of a JSON object body (a request's, or a webhook answer's)."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    params: Params = {}
    for name, value in body.items():
        if isinstance(value, str) and name in JSON_PARAMS:
            value = decode_text_value(name, value)
        params[str(name)] = value
    return params


async def _decode_multipart(request: web.Request) -> Params:
    params: Params = {}
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        data = await part.read()
        if part.filename is not None:
            params[part.name] = bytes(data)  # an uploaded file, kept as its bytes
        else:
            params[part.name] = decode_text_value(part.name, data.decode("utf-8"))
    return params


async def decode_params(request: web.Request) -> Params:
    """All parameters of a Bot API request: query string first, body on top."""
    params: Params = {k: decode_text_value(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    content_type = request.content_type
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad_request("can't parse JSON request body") from None
        params.update(decode_json_body(body))
    elif content_type == "multipart/form-data":
        params.update(await _decode_multipart(request))
    else:
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                params[name] = value.file.read()
            else:
                text = value if isinstance(value, str) else bytes(value).decode("utf-8")
                params[name] = decode_text_value(name, text)
    return params


def json_response(body: dict[str, Any], status: int = 200) -> web.Response:
    # Telegram answers application/json without a charset parameter.
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        status=status,
        content_type="application/json",
    )


def ok(result: Any) -> web.Response:
    if isinstance(result, Described):
        body = {"ok": True, "result": result.result, "description": result.description}
        return json_response(body)
    return json_response({"ok": True, "result": result})


def error(err: ApiError) -> web.Response:
    return json_response(err.body(), status=err.status)


# --- typed access to decoded parameters ----------------------------------------------------


def get_int(params: Params, name: str, default: int | None = None) -> int:
    value = params.get(name, default)
    if value is None:
        raise bad_request(f"{name} is empty" if name != "chat_id" else "chat_id is empty")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request(f"wrong parameter {name} in request")
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"wrong parameter {name} in request") from None


def get_opt_int(params: Params, name: str) -> int | None:
    return get_int(params, name) if params.get(name) is not None else None


def get_str(params: Params, name: str, default: str | None = None) -> str:
    value = params.get(name, default)
    if value is None:
        raise bad_request(f"parameter {name} is required")
    return str(value)


def get_opt_str(params: Params, name: str) -> str | None:
    value = params.get(name)
    return None if value is None else str(value)


def get_bool(params: Params, name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def get_object(params: Params, name: str) -> dict[str, Any] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"can't parse {name} JSON object")
    return value


def get_list(params: Params, name: str) -> list[Any] | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_request(f"can't parse {name} JSON object")
    return value
