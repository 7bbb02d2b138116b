"""Previews of an artifact on the dashboard, made from a bounded prefix of its bytes.

User content is never rendered as HTML of ours: text, JSON and CSV go out escaped by the template;
Markdown is rendered and then cut down to a short allow-list of tags with no attributes but a
link's href; images and PDFs are loaded from a separate response that carries its own
``Content-Security-Policy: sandbox``. HTML and SVG get no preview at all.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import markdown
import nh3

from artifacts.models import Artifact
from artifacts.storage import BlobError, blob_iter_chunks

PREVIEW_BYTES = 256 * 1024
CSV_ROWS = 200
CSV_COLUMNS = 50
CSV_CELL_CHARS = 500

# Shown with <img>: formats a browser decodes as pictures only. Never SVG, which is a document.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
PDF_TYPE = "application/pdf"
# Markup a browser would run or lay out as a page of ours: never previewed, whatever else applies.
NEVER_PREVIEWED = frozenset({"text/html", "application/xhtml+xml", "image/svg+xml", "text/xml+svg"})
TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/x-sh",
        "application/x-shellscript",
        "application/x-python",
        "application/x-python-code",
        "application/sql",
        "application/x-yaml",
        "application/yaml",
        "application/toml",
        "application/x-toml",
        "application/xml",
        "application/x-ndjson",
        "application/jsonl",
        "application/x-httpd-php",
        "application/x-tex",
        "application/x-latex",
    }
)
_GENERIC_TYPES = frozenset({"", "text/plain", "application/octet-stream"})

MARKDOWN_TAGS = frozenset(
    {
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "p",
        "br",
        "hr",
        "blockquote",
        "ul",
        "ol",
        "li",
        "pre",
        "code",
        "em",
        "strong",
        "del",
        "a",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "dl",
        "dt",
        "dd",
        "sup",
        "sub",
        "kbd",
    }
)


@dataclass
class Preview:
    """What the detail page shows. ``kind`` is one of text, json, csv, markdown, image, pdf, none."""

    kind: str
    text: str = ""
    html: str = ""
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False
    shown_bytes: int = 0
    reason: str = ""

    @property
    def read_bytes(self) -> bool:
        return self.kind in {"text", "json", "csv", "markdown"}


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def preview_kind(artifact: Artifact) -> str:
    ctype = media_type(artifact.content_type)
    name = artifact.filename.lower()
    if artifact.is_archive or artifact.is_folder or ctype in NEVER_PREVIEWED or ctype.endswith("+svg"):
        return "none"
    if ctype in INLINE_IMAGE_TYPES:
        return "image"
    if ctype == PDF_TYPE:
        return "pdf"
    generic = ctype in _GENERIC_TYPES
    if ctype in {"text/csv", "text/tab-separated-values"} or (generic and name.endswith((".csv", ".tsv"))):
        return "csv"
    if ctype in {"text/markdown", "text/x-markdown"} or (generic and name.endswith((".md", ".markdown"))):
        return "markdown"
    if ctype == "application/json" or ctype.endswith("+json") or (generic and name.endswith(".json")):
        return "json"
    if ctype.startswith("text/") or ctype in TEXT_TYPES or ctype.endswith("+xml"):
        return "text"
    return "none"


def inline_content_type(artifact: Artifact) -> str | None:
    """The exact type the inline-content response may carry, or None when it must not exist."""
    kind = preview_kind(artifact)
    if kind == "image":
        return media_type(artifact.content_type)
    if kind == "pdf":
        return PDF_TYPE
    return None


def build_preview(artifact: Artifact) -> Preview:
    kind = preview_kind(artifact)
    if kind == "none":
        if artifact.is_archive:
            return Preview("none", reason="This is a folder stored as a tar.gz archive.")
        if artifact.is_folder:
            return Preview("none", reason="This is a folder: open its files one by one.")
        ctype = media_type(artifact.content_type)
        if ctype in NEVER_PREVIEWED or ctype.endswith("+svg"):
            return Preview(
                "none", reason="HTML and SVG files are never shown here, because a browser would run them as a page."
            )
        return Preview("none", reason=f"There is no preview for {artifact.content_type or 'this type of file'}.")
    if kind in {"image", "pdf"}:
        return Preview(kind)
    try:
        data = b"".join(blob_iter_chunks(artifact.content_key, length=PREVIEW_BYTES))
    except (BlobError, OSError):
        return Preview("none", reason="The stored bytes could not be read just now.")
    truncated = artifact.size > len(data)
    text = _decode(data, truncated)
    if text is None:
        return Preview("none", reason="The file does not look like text.")
    if kind == "json":
        return _json_preview(text, truncated, len(data))
    if kind == "csv":
        delimiter = (
            "\t"
            if media_type(artifact.content_type) == "text/tab-separated-values"
            or artifact.filename.lower().endswith(".tsv")
            else ","
        )
        return _csv_preview(text, truncated, len(data), delimiter)
    if kind == "markdown":
        return Preview("markdown", html=render_markdown(text), truncated=truncated, shown_bytes=len(data))
    return Preview("text", text=text, truncated=truncated, shown_bytes=len(data))


def _decode(data: bytes, truncated: bool) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(data) - 3:
            # A character cut by the end of the prefix.
            return data[: exc.start].decode("utf-8", errors="replace")
        return data.decode("utf-8", errors="replace")


def _json_preview(text: str, truncated: bool, shown: int) -> Preview:
    if not truncated:
        try:
            return Preview("json", text=json.dumps(json.loads(text), indent=2, ensure_ascii=False), shown_bytes=shown)
        except ValueError:
            pass
    return Preview("text", text=text, truncated=truncated, shown_bytes=shown)


def _csv_preview(text: str, truncated: bool, shown: int, delimiter: str) -> Preview:
    lines = text.splitlines(keepends=True)
    if truncated and lines:
        # The last line may be cut short.
        lines = lines[:-1]
    rows: list[list[str]] = []
    try:
        for row in csv.reader(io.StringIO("".join(lines)), delimiter=delimiter):
            rows.append([cell[:CSV_CELL_CHARS] for cell in row[:CSV_COLUMNS]])
            if len(rows) > CSV_ROWS:
                break
    except csv.Error:
        return Preview("text", text=text, truncated=truncated, shown_bytes=shown)
    if not rows:
        return Preview("text", text=text, truncated=truncated, shown_bytes=shown)
    more = len(rows) > CSV_ROWS or truncated
    return Preview("csv", rows=rows[:CSV_ROWS], truncated=more, shown_bytes=shown)


def render_markdown(text: str) -> str:
    """Markdown to HTML, then cut down to an allow-list: raw HTML in the source loses its tags
    (and script or style elements their content), links keep only an absolute http(s) or mailto
    href, and no element keeps any other attribute."""
    html = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    return nh3.clean(
        html,
        tags=set(MARKDOWN_TAGS),
        attributes={"a": {"href", "title"}},
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
