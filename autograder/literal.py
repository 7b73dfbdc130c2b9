"""Showing untrusted strings as literal text: one function per output format.

Strings that come from the student's process or upload (exception type names,
values in a comparison's sentences, file names) reach every output the grader
writes.  Each function here makes such a string inert in one target:

- every format: a lone surrogate, U+FFFE and U+FFFF become U+FFFD (they crash
  UTF-8 encoders and make XML unparsable); C0 control characters and DEL
  become their visible "control pictures" (ESC shows as ␛, so an ANSI
  sequence is printed, not obeyed; a lone CR shows as ␍, so it cannot return
  the cursor and overwrite a line); C1 controls (U+0080-U+009F, which include
  the one-byte CSI) and the bidirectional overrides that reorder what a line
  shows are written as ``\\uXXXX``.  CR LF, U+2028, U+2029 and U+0085 count
  as a newline.  A string longer than its limit is cut and says how much was
  left out.
- text (``for_text``): newlines are kept, and every continuation line starts
  with the indentation its caller gives.  Every line the grader writes itself
  starts at column 0, so a newline in a student string can never start a line
  that looks like one of them.
- JSON (``for_json``): as for text, without indentation; json.dumps then
  escapes the rest, and nothing left can break ``ensure_ascii=False``.
- JUnit XML (``for_junit``): as for JSON; what remains is valid XML 1.0
  character data, and ElementTree escapes the markup.
- Markdown inline (``markdown_inline``): newlines become " ⏎ ", surrounding
  whitespace is dropped, and every character that starts Markdown or GFM
  syntax (emphasis, links, images, code, raw HTML and autolinks, headings,
  tables, entities, strikethrough, bare-URL and e-mail autolinks, math) is
  backslash-escaped, as is a leading list or heading marker.  CommonMark
  shows a backslash-escaped ASCII punctuation character literally.
- Markdown block (``markdown_block``): a fenced code block whose fence is
  longer than the longest run of backticks in the content, so the content
  cannot close it; nothing inside a fence is interpreted.
- HTML (``for_html``): html.escape, quotes included.
"""

from __future__ import annotations

import html

INLINE_LIMIT = 1000
BLOCK_LIMIT = 20_000

# Characters that begin Markdown or GitHub-flavoured Markdown syntax anywhere
# in a line.  ':' and '@' stop GFM's bare "http://..." and e-mail autolinks,
# '.' its "www." autolinks, '$' math, '~' strikethrough, '&' entities.
MARKDOWN_SPECIAL = frozenset("\\`*_~[]()<>!#|&:@$.{}")
# At the start of a line these make a list item or a setext heading.
MARKDOWN_LEADING = frozenset("-+=")

_NEWLINES = ("\r\n", "\u2028", "\u2029", "\u0085")
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def visible(value: object, limit: int) -> str:
    """``value`` as text in which nothing acts on a terminal, parser or encoder; newlines kept as "\\n"."""
    text = value if isinstance(value, str) else str(value)
    text = _bounded(text, limit)
    for newline in _NEWLINES:
        text = text.replace(newline, "\n")
    return "".join(_visible_char(char) for char in text)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit} more characters not shown)"


def _visible_char(char: str) -> str:
    code = ord(char)
    if char in "\n\t":
        return char
    if code < 0x20:
        return chr(0x2400 + code)  # the control picture: "\x1b" shows as "␛"
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0x80 <= code <= 0x9F or char in _BIDI_CONTROLS:
        return f"\\u{code:04x}"
    if 0xD800 <= code <= 0xDFFF or code in (0xFFFE, 0xFFFF):
        return "\ufffd"
    return char


def for_text(value: object, *, indent: str, limit: int = BLOCK_LIMIT) -> str:
    """For a terminal or a text file: continuation lines start with ``indent`` (which must not be empty)."""
    if not indent or indent.strip(" \t"):
        raise ValueError("indent must be one or more spaces or tabs")
    return ("\n" + indent).join(visible(value, limit).split("\n"))


def for_json(value: object, limit: int = BLOCK_LIMIT) -> str:
    return visible(value, limit)


def for_junit(value: object, limit: int = BLOCK_LIMIT) -> str:
    return visible(value, limit)


def for_html(value: object, limit: int = INLINE_LIMIT) -> str:
    return html.escape(visible(value, limit), quote=True)


def one_line(value: object, limit: int = INLINE_LIMIT) -> str:
    """``visible`` with each newline shown as "⏎" and tabs as spaces: for places that hold one line."""
    return visible(value, limit).replace("\t", " ").replace("\n", " ⏎ ").strip()


def markdown_inline(value: object, limit: int = INLINE_LIMIT) -> str:
    """For a paragraph, list item, blockquote, heading or table cell: shown literally once rendered."""
    text = one_line(value, limit)
    escaped = "".join("\\" + char if char in MARKDOWN_SPECIAL else char for char in text)
    if escaped[:1] in MARKDOWN_LEADING:
        escaped = "\\" + escaped
    return escaped


def markdown_block(value: object, limit: int = BLOCK_LIMIT) -> list[str]:
    """The lines of a fenced code block holding ``value``; no line of it can end the fence."""
    text = visible(value, limit)
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return [fence, *text.split("\n"), fence]


def _longest_backtick_run(text: str) -> int:
    longest = current = 0
    for char in text:
        current = current + 1 if char == "`" else 0
        longest = max(longest, current)
    return longest
