"""A small report writer: headings, paragraphs, tables, preformatted text and figures, written as
Markdown and as one self-contained HTML page (figures embedded), every file atomically.

It knows nothing about what it reports; ``diffsim demo`` fills one in.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> r = Report(folder, "Example")
>>> r.heading("Numbers")
>>> r.paragraph("Two rows, with `code` in a sentence.")
>>> r.table(["method", "error"], [["bptt", 1e-12], ["adjoint", 3.4e-7]])
>>> sorted(p.name for p in r.write())
['report.html', 'report.md']
>>> "| adjoint | 3.4e-07 |" in (folder / "report.md").read_text()
True
"""

from __future__ import annotations

import base64
import html
import os
import pathlib
import re

from .files import write_atomic, write_figure


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> pathlib.Path:
    """Save a matplotlib figure atomically (the format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    try:
        return write_figure(fig, path, dpi)
    finally:
        plt.close(fig)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _inline_html(text: str) -> str:
    """Escape, then `code` and **bold** as in the Markdown."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


_STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
table{border-collapse:collapse;margin:0.8rem 0}td,th{border:1px solid #ccc;padding:0.2rem 0.6rem;text-align:left}
th{background:#f3f3f3}pre{background:#f6f6f6;padding:0.6rem;overflow-x:auto}figure{margin:1rem 0}
img{max-width:100%}figcaption{color:#444;font-size:0.9rem}code{background:#f3f3f3;padding:0 0.2rem}"""


class Report:
    """Blocks added in order, rendered to ``folder/report.md`` and ``folder/report.html``.

    Figures are saved into ``folder`` as they are added (``figure``); the Markdown links them,
    the HTML embeds them, so the HTML page can be mailed on its own."""

    def __init__(self, folder: str | os.PathLike, title: str) -> None:
        self.folder = pathlib.Path(folder)
        self.title = title
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def preformatted(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def table(self, headers, rows) -> None:
        """A table of ``rows`` (sequences as long as ``headers``); floats print with 4 digits."""
        self.blocks.append(("table", [str(h) for h in headers], [[_cell(v) for v in row] for row in rows]))

    def figure(self, fig, name: str, caption: str = "") -> pathlib.Path:
        """Save matplotlib figure ``fig`` as ``folder/name`` (atomically; closes it) and show it here."""
        path = save_figure(fig, self.folder / name)
        self.blocks.append(("figure", name, caption))
        return path

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, *rest in self.blocks:
            if kind == "heading":
                out += ["#" * rest[0] + " " + rest[1], ""]
            elif kind == "paragraph":
                out += [rest[0], ""]
            elif kind == "pre":
                out += ["```", rest[0].rstrip("\n"), "```", ""]
            elif kind == "table":
                headers, rows = rest
                out.append("| " + " | ".join(h.replace("|", "\\|") for h in headers) + " |")
                out.append("|" + "|".join(" --- " for _ in headers) + "|")
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "figure":
                name, caption = rest
                out += [f"![{caption or name}]({name})", ""]
                if caption:
                    out += [f"*{caption}*", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, *rest in self.blocks:
            if kind == "heading":
                body.append(f"<h{rest[0]}>{html.escape(rest[1])}</h{rest[0]}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline_html(rest[0])}</p>")
            elif kind == "pre":
                body.append(f"<pre>{html.escape(rest[0])}</pre>")
            elif kind == "table":
                headers, rows = rest
                head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
                cells = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in rows)
                body.append(f"<table><tr>{head}</tr>{cells}</table>")
            elif kind == "figure":
                name, caption = rest
                data = base64.b64encode((self.folder / name).read_bytes()).decode()
                suffix = pathlib.Path(name).suffix.lstrip(".").lower()
                mime = {"svg": "image/svg+xml", "jpg": "image/jpeg"}.get(suffix, f"image/{suffix}")
                body.append(f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(caption or name)}">'
                            f"<figcaption>{_inline_html(caption)}</figcaption></figure>")
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(self.title)}'
                f"</title><style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")

    def write(self, markdown: bool = True, html_page: bool = True) -> list[pathlib.Path]:
        """Write ``report.md`` and ``report.html`` into the folder (atomically); returns their paths."""
        written = []
        if markdown:
            written.append(write_atomic(self.folder / "report.md", self.markdown()))
        if html_page:
            written.append(write_atomic(self.folder / "report.html", self.html()))
        return written
