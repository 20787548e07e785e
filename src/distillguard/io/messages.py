"""Text out of OpenAI-style chat messages and responses, shared by every reader that logs content."""

from __future__ import annotations

from typing import Any

from distillguard.io.base import RecordError, is_mapping

_SYSTEM_ROLES = frozenset({"system", "developer"})


def content_text(content: Any) -> str | None:
    """A message's text: a plain string, or the text parts of a multi-part content list."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text"))
            for part in content
            if is_mapping(part) and part.get("type") in ("text", "input_text", "output_text")
        ]
        return "\n".join(parts) if parts else None
    return None


def message_texts(messages: Any, fld: str) -> tuple[str | None, str | None]:
    """(system prompt, user text) from a messages list, a bare prompt string, or a legacy dict."""
    if messages is None or messages == [] or messages == "":
        return None, None
    if isinstance(messages, str):
        return None, messages
    if is_mapping(messages):
        messages = messages.get("messages", [messages])
    if not isinstance(messages, list):
        raise RecordError(fld, f"expected a list of messages, got {type(messages).__name__}")
    system: list[str] = []
    user: list[str] = []
    for i, msg in enumerate(messages):
        if not is_mapping(msg):
            raise RecordError(f"{fld}[{i}]", "expected a message object")
        text = content_text(msg.get("content"))
        if text is None:
            continue
        role = msg.get("role")
        if role in _SYSTEM_ROLES:
            system.append(text)
        elif role == "user":
            user.append(text)
    return ("\n\n".join(system) or None), ("\n\n".join(user) or None)


def response_text(response: Any, fld: str) -> str | None:
    """The first choice's text from a chat/text completion response object, or a bare string."""
    if response is None or isinstance(response, str):
        return response or None
    if not is_mapping(response):
        return None
    choices = response.get("choices")
    if isinstance(choices, list) and choices:
        first = choices[0]
        if not is_mapping(first):
            raise RecordError(f"{fld}.choices[0]", "expected an object")
        if is_mapping(first.get("message")):
            return content_text(first["message"].get("content"))
        if isinstance(first.get("text"), str):
            return str(first["text"])
    output = response.get("output")  # Responses API
    if isinstance(output, list):
        texts = [
            content_text(item.get("content"))
            for item in output
            if is_mapping(item) and item.get("type") == "message"
        ]
        return "\n".join(t for t in texts if t) or None
    return None
