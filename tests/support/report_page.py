"""Reading a `lamina.evaluation.report` page back: its tables of numbers (each cell's
`data-value` at full precision), images, worst mistakes, sections and text."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

from PIL import Image


class Page(HTMLParser):
    """The parts of the report a reader relies on: tables of numbers, images, mistakes, text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.images: list[dict[str, str]] = []
        self.cells: dict[str, list[tuple[dict[str, str], dict[str, str]]]] = {}
        self.mistakes: list[dict[str, str]] = []
        self.sections: list[str] = []
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.table_text: dict[str, list[list[str]]] = {}
        self._table = self._row = self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = {key: value or "" for key, value in attrs}
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag == "table":
            self._table = attrs.get("id", "")
        elif tag == "tr":
            self._row = attrs
            self.table_text.setdefault(self._table, []).append([])
            if attrs.get("class") == "mistake":
                self.mistakes.append(attrs)
        elif tag == "figure" and attrs.get("class") == "mistake":
            self.mistakes.append(attrs)
        if tag in ("td", "th"):
            self._cell = []
        if tag == "td" and "data-value" in attrs:
            self.cells.setdefault(self._table, []).append((self._row, attrs))
        elif tag == "img":
            self.images.append(attrs)
            if self.mistakes and self.mistakes[-1].get("class") == "mistake":
                self.mistakes[-1].setdefault("thumbnail", attrs["src"])
        elif tag == "section":
            self.sections.append(attrs["id"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.table_text[self._table][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def rows(self, table: str, key: str) -> dict[str, list[float]]:
        """`{row attribute value: [cell values]}` for the rows of `table` carrying `key`."""
        found: dict[str, list[float]] = {}
        for row, cell in self.cells.get(table, []):
            if key in row:
                found.setdefault(row[key], []).append(float(cell["data-value"]))
        return found


def png(source: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert source.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(source[len(prefix):], validate=True)))
    assert image.format == "PNG"
    image.load()
    return image
