"""The request id as its own field in vLLM's JSON log lines (a logging filter).

vLLM's request logger keeps the id in the message's arguments only ("Received request %s:
...", "Generated response %s%s: ...", "Aborted request %s."), so a JSON formatter would bury
it in the message text. This filter copies it to two fields that python-json-logger's
JsonFormatter writes like any other extra attribute:

- vllm_request_id: the id as vLLM logs it;
- request_id: the gateway's X-Request-Id it was built from (vLLM 0.32 takes X-Request-Id as
  the base of its id: cmpl-<X-Request-Id>-<prompt index> for completions,
  chatcmpl-<X-Request-Id> for chat), the same value as the gateway's JSON access log's
  request_id field.

It only adds fields and never drops a record. vLLM's logging config (VLLM_LOGGING_CONFIG_PATH,
a dictConfig JSON the role renders) names it as llmhost_vllm_logging.RequestIdFilter; the unit
puts this folder on PYTHONPATH so every vLLM process (API server, engine core) can import it.
"""

from __future__ import annotations

import logging
import re

_WORDS_BEFORE_ID = ("request ", "response ")
_VLLM_PREFIX = re.compile(r"^(?:chatcmpl|cmpl)-")
_COMPLETION_INDEX = re.compile(r"-[0-9]+$")


def gateway_request_id(vllm_request_id: str) -> str:
    """The X-Request-Id a vLLM request id was built from (the id itself when not prefixed)."""
    if vllm_request_id.startswith("cmpl-"):
        return _COMPLETION_INDEX.sub("", vllm_request_id[len("cmpl-") :], count=1)
    return _VLLM_PREFIX.sub("", vllm_request_id, count=1)


def request_id_of(record: logging.LogRecord) -> str | None:
    """The request id a record's message is about: the first %s argument after "request "."""
    msg = record.msg
    args = record.args
    if not isinstance(msg, str) or not isinstance(args, tuple) or not args:
        return None
    first = msg.find("%s")
    if first < 0 or not msg[:first].lower().endswith(_WORDS_BEFORE_ID):
        return None
    value = args[0]
    return value if isinstance(value, str) and value else None


class RequestIdFilter(logging.Filter):
    """Adds request_id and vllm_request_id to records about one request; keeps every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        vllm_id = request_id_of(record)
        if vllm_id is not None:
            record.vllm_request_id = vllm_id
            record.request_id = gateway_request_id(vllm_id)
        return True
