"""Read frame prompts out of a language model's reply, repairing the usual JSON faults.

The paper's format is one JSON object whose keys are the 1-based frame numbers as strings:
``{"1": "...", "2": "...", ...}``. Model replies often wrap it in code fences or prose, use
single or typographic quotes, leave trailing commas or unquoted integer keys, or put a
``<think>`` block first. `parse_frame_prompts` tries a strict parse first and only then the
repairs; `validate_frame_prompts` insists on exactly the keys "1".."N" with non-empty strings.
Nothing here ever returns a partial prompt list: either all N prompts or a `FramePromptsError`.
"""

from __future__ import annotations

import json
import re

THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
CODE_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
DOUBLE_QUOTES = {'"': '"', "\u201c": "\u201d", "\u201d": "\u201d", "\u201e": "\u201d"}
SINGLE_QUOTES = {"'": "'", "\u2018": "\u2019", "\u2019": "\u2019"}
AFTER_STRING = set(":,}]")


class FramePromptsError(ValueError):
    """A reply that is not a valid frame-prompt object; the message says what was wrong."""

    def __init__(self, problem: str, reply: str = ""):
        self.problem, self.reply = problem, reply
        shown = reply.strip().replace("\n", " ")
        if len(shown) > 200:
            shown = shown[:197] + "..."
        super().__init__(f"{problem}" + (f" (reply began: {shown!r})" if shown else ""))


def strip_thinking(text: str) -> str:
    """Remove reasoning blocks (``<think>...</think>``) that some models emit before the answer."""
    text = THINK_BLOCK.sub("", text)
    if "</think>" in text.lower():  # an opening tag eaten by the server: keep what follows the end
        text = text[text.lower().rindex("</think>") + len("</think>"):]
    return text.strip()


def unwrap_code_fence(text: str) -> str:
    """Return the first fenced block that looks like JSON, else the text unchanged."""
    for block in CODE_FENCE.findall(text):
        if "{" in block or "[" in block:
            return block.strip()
    return text


def outermost_json_span(text: str) -> str:
    """Cut prose before the first '{' (or '[') and after the last matching closer."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return text
    start = min(starts)
    closer = "}" if text[start] == "{" else "]"
    end = text.rfind(closer)
    return text[start:end + 1] if end > start else text[start:]


def _closing_quote_at(text: str, i: int, closers: set[str]) -> bool:
    """A quote ends a string only when what follows it is JSON structure (or the end).

    This keeps apostrophes (``the girl's hat``) and quoted words inside a string intact.
    """
    if text[i] not in closers:
        return False
    rest = text[i + 1:].lstrip()
    return not rest or rest[0] in AFTER_STRING


def _read_string(text: str, i: int, closers: set[str]) -> tuple[str, int]:
    """Read a string body starting after its opening quote; return (body, index after closer)."""
    body = []
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            escaped = text[i + 1]
            body.append("'" if escaped == "'" else "\\" + escaped)
            i += 2
            continue
        if _closing_quote_at(text, i, closers):
            return "".join(body), i + 1
        body.append('\\"' if char == '"' else char)
        i += 1
    return "".join(body), i  # unterminated: the strict parse will report it


def normalise_json_text(text: str) -> str:
    """Rewrite near-JSON into JSON: every string double-quoted, no trailing commas, integer keys quoted."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in DOUBLE_QUOTES or char in SINGLE_QUOTES:
            closers = {DOUBLE_QUOTES.get(char, SINGLE_QUOTES.get(char)), char}
            closers |= {'"', "\u201d", "\u201c"} if char in DOUBLE_QUOTES else {"'", "\u2019"}
            body, i = _read_string(text, i + 1, closers)
            out.append('"' + body.replace("\n", "\\n") + '"')
            continue
        if char == ",":
            rest = text[i + 1:].lstrip()
            if rest[:1] in ("}", "]"):
                i += 1
                continue
        if char.isdigit() and _is_bare_key(text, i, out):
            match = re.match(r"\d+", text[i:])
            out.append(f'"{match.group(0)}"')
            i += match.end()
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _is_bare_key(text: str, i: int, out: list[str]) -> bool:
    before = "".join(out).rstrip()[-1:]
    match = re.match(r"\d+\s*:", text[i:])
    return bool(match) and before in ("{", ",")


def loads_tolerant(reply: str):
    """Parse a model reply as JSON, applying repairs only when the strict parse fails."""
    text = strip_thinking(reply)
    candidates = [text]
    unfenced = unwrap_code_fence(text)
    candidates.append(outermost_json_span(unfenced))
    candidates.append(normalise_json_text(candidates[-1]))
    first_error = None
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False)
        except (json.JSONDecodeError, ValueError) as error:
            first_error = first_error or error
    raise FramePromptsError(
        f"the reply is not JSON even after repairs (fences, prose, quotes, trailing commas): {first_error}",
        reply)


def _as_keyed_dict(data, reply: str) -> dict:
    """Accept the object itself, a one-key wrapper around it ({"frames": {...}}) or a plain list."""
    if isinstance(data, dict) and len(data) == 1:
        (only_key, inner), = data.items()
        if isinstance(inner, (dict, list)) and not str(only_key).strip().isdigit():
            data = inner
    if isinstance(data, list):
        return {str(i + 1): value for i, value in enumerate(data)}
    if not isinstance(data, dict):
        raise FramePromptsError(f"expected a JSON object of frame prompts, got a {type(data).__name__}", reply)
    return data


def _describe_numbers(numbers) -> str:
    numbers = list(numbers)
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")


def validate_frame_prompts(data, count: int, reply: str = "") -> dict[str, str]:
    """Check for exactly the keys "1".."count" with non-empty string values; return them in order."""
    data = _as_keyed_dict(data, reply)
    keys = {str(key).strip(): value for key, value in data.items()}
    wanted = [str(n) for n in range(1, count + 1)]
    missing = [k for k in wanted if k not in keys]
    extra = [k for k in keys if k not in set(wanted)]
    if missing or extra:
        parts = [f"expected exactly {count} frame prompts keyed \"1\"..\"{count}\", got {len(keys)}"]
        if missing:
            parts.append(f"missing keys {_describe_numbers(missing)}")
        if extra:
            parts.append(f"unexpected keys {_describe_numbers(repr(k) for k in extra)}")
        raise FramePromptsError("; ".join(parts), reply)
    for key in wanted:
        value = keys[key]
        if not isinstance(value, str):
            raise FramePromptsError(f"frame prompt {key} is a {type(value).__name__}, not a string", reply)
        if not value.strip():
            raise FramePromptsError(f"frame prompt {key} is empty", reply)
    return {key: " ".join(keys[key].split()) for key in wanted}


def parse_frame_prompts(reply: str, count: int) -> dict[str, str]:
    """Repair, parse and validate a reply into exactly `count` prompts keyed "1".."count"."""
    if not isinstance(reply, str) or not reply.strip():
        raise FramePromptsError("the reply is empty", "")
    return validate_frame_prompts(loads_tolerant(reply), count, reply)


def frame_prompts_to_json(prompts: dict[str, str]) -> str:
    """The paper's format, one prompt per line so that it stays easy to edit by hand."""
    return json.dumps(prompts, ensure_ascii=False, indent=1)


def frame_prompt_schema(count: int) -> dict:
    """JSON schema of a reply with exactly the keys "1".."count", for servers with constrained decoding."""
    keys = [str(n) for n in range(1, count + 1)]
    return {
        "type": "object",
        "properties": {key: {"type": "string", "minLength": 1} for key in keys},
        "required": keys,
        "additionalProperties": False,
    }
