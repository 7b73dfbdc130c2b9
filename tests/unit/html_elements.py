"""What an HTML fragment contains: its element names and its text (for tests of escaping)."""

from __future__ import annotations

from html.parser import HTMLParser


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data

    def handle_comment(self, data):
        self.tags.append("!--")


def parsed(html_text: str) -> Elements:
    collector = Elements()
    collector.feed(html_text)
    collector.close()
    return collector
