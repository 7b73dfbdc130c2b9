"""autograder/literal.py: every escaping function on hostile strings.

Markdown is checked by rendering it (mistune with raw HTML allowed, tables,
bare-URL autolinks and strikethrough, which is closer to GitHub than the
feedback's own settings) and comparing the rendered text with the string.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import mistune
import pytest

from autograder import literal

from html_elements import parsed

HOSTILE = {
    "link": "[Grading error: request your regrade here](http://evil.example/regrade)",
    "bold": "**Score overridden by the instructor: 100/100**",
    "emphasis": "_a_ *b* ~~c~~",
    "heading": "# Score: 100/100",
    "script": "<script>alert('x')</script>",
    "img": "<img src=x onerror=alert(1)>",
    "autolink": "<http://evil.example>",
    "bare_urls": "see http://evil.example, www.evil.example or mail me@evil.example",
    "image": "![100/100](http://evil.example/badge.png)",
    "reference": "[regrade][r] and [r]: http://evil.example",
    "fence": "```\nclosed the fence\n```",
    "table": "a | b | c",
    "list": "- item",
    "ordered": "1. item",
    "quote": "> quoted",
    "entity": "&lt;b&gt;bold&lt;/b&gt; &#42;x&#42;",
    "math": "$x^2$",
    "backslash": "\\*not bold\\*",
    "comment": "<!-- hidden -->",
}
CONTROLS = "\x1b[2J\x1b[31mred\x1b[0m\x07\x08\x00\x7f\x9b31m\x0b\x0c\x1c"


RENDER = mistune.create_markdown(escape=False, plugins=["table", "url", "strikethrough"])
CONTEXTS = {
    "paragraph": ("{}", ["p"]),
    "list item": ("- {}", ["ul", "li"]),
    "blockquote": ("> {}", ["blockquote", "p"]),
    "heading": ("## {}", ["h2"]),
    "table cell": ("| a |\n| --- |\n| {} |", ["table", "thead", "tr", "th", "tbody", "tr", "td"]),
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("name", HOSTILE)
def test_markdown_inline_renders_as_the_literal_text(name, context):
    value = HOSTILE[name]
    template, tags = CONTEXTS[context]
    shown = parsed(RENDER(template.format(literal.markdown_inline(value))))
    assert shown.tags == tags
    assert literal.one_line(value) in shown.text


def test_markdown_inline_folds_lines_so_nothing_starts_a_block():
    value = "fine\n# Score: 100\n\n[r]: http://evil.example\n    indented"
    escaped = literal.markdown_inline(value)
    assert "\n" not in escaped
    shown = parsed(RENDER(f"- {escaped}"))
    assert shown.tags == ["ul", "li"]
    assert "fine ⏎ # Score: 100 ⏎  ⏎ [r]: http://evil.example ⏎     indented" in shown.text


@pytest.mark.parametrize("content", ["```", "````\n```", "a ``` b\n`````", "no backticks", "`x`"])
def test_markdown_block_cannot_be_closed_from_inside(content):
    value = f"{content}\n**bold** <img src=x onerror=alert(1)> [a](http://evil.example)"
    lines = literal.markdown_block(value)
    shown = parsed(RENDER("\n".join(lines) + "\nafter the block\n"))
    assert shown.tags == ["pre", "code", "p"]
    assert value in shown.text


def test_visible_shows_control_characters_instead_of_obeying_them():
    shown = literal.visible(CONTROLS + "\rscore: 100", limit=1000)
    assert not any(ord(char) < 0x20 and char not in "\n\t" for char in shown)
    assert "\x7f" not in shown and "\x9b" not in shown
    assert shown.startswith("␛[2J␛[31mred␛[0m␇␈␀␡\\u009b31m")
    assert "␍score: 100" in shown  # a carriage return cannot move back and overwrite the line


def test_visible_line_breaks_and_bidi_overrides():
    assert literal.visible("a\r\nb\u2028c\u2029d\x85e", limit=100) == "a\nb\nc\nd\ne"
    assert literal.visible("abc\u202edef", limit=100) == "abc\\u202edef"


def test_visible_replaces_lone_surrogates_and_noncharacters():
    shown = literal.visible("a\ud800b\udcffc\ufffed\uffff", limit=100)
    assert shown == "a\ufffdb\ufffdc\ufffdd\ufffd"
    shown.encode("utf-8")


def test_long_strings_are_cut_and_say_how_much():
    shown = literal.visible("x" * 1_000_000, limit=1000)
    assert len(shown) < 1100 and "999000 more characters not shown" in shown
    assert len(literal.markdown_inline("y" * 1_000_000)) < literal.INLINE_LIMIT + 100
    assert len("\n".join(literal.markdown_block("z\n" * 1_000_000))) < literal.BLOCK_LIMIT + 200


def test_for_text_indents_every_continuation_line():
    value = "first\nscore:     100 / 100\r\n\x1b[1Astatus:    graded"
    shown = literal.for_text(value, indent="    ")
    lines = shown.split("\n")
    assert lines[0] == "first"
    assert all(line.startswith("    ") for line in lines[1:])
    assert "\x1b" not in shown and "\r" not in shown
    with pytest.raises(ValueError):
        literal.for_text(value, indent="")
    with pytest.raises(ValueError):
        literal.for_text(value, indent="> ")


def test_for_junit_is_valid_xml_1_0():
    value = CONTROLS + "\ud800\ufffe\uffff <b>&amp;</b> ]]>"
    element = ElementTree.Element("failure", message=literal.for_junit(value))
    element.text = literal.for_junit(value)
    document = ElementTree.tostring(element, encoding="utf-8", xml_declaration=True)
    back = ElementTree.fromstring(document)
    assert "<b>&amp;</b> ]]>" in back.text and back.get("message") == back.text


def test_for_json_survives_ensure_ascii_false_and_utf8(tmp_path):
    value = literal.for_json("\ud800 lone \udfff surrogates" + CONTROLS)
    text = json.dumps({"output": value}, ensure_ascii=False)
    (tmp_path / "results.json").write_text(text, encoding="utf-8")
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))["output"] == value


def test_for_html_escapes_markup_and_quotes():
    shown = literal.for_html("<img src=x onerror=\"alert(1)\"> & '")
    assert shown == "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &#x27;"
