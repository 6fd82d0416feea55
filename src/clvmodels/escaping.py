"""Values from the user's file in the HTML report: escaped where they are shown, and a
final sanitising pass over the page.

The report is meant to be shared, and its data come from exports whose fields customers
or staff can type into: a segment named ``<script>...</script>`` or a customer id
``<img src=x onerror=...>`` must show as text, never run. Two layers:

1. Display (the notebook): :func:`text` escapes a value for Markdown or HTML text;
   :func:`escape_tables` makes every pandas ``Styler`` shown in the notebook escape its
   index, column labels, index names and text cells (pandas does not by default; plain
   DataFrames are escaped by pandas' own HTML).
2. Page (``clvmodels report``): :func:`sanitize` re-writes the exported HTML without
   ``<script>``, ``<iframe>``, ``<object>``, ``<embed>``, ``<base>``, ``<form>`` and
   refreshing ``<meta>`` elements, event-handler attributes (``on...``) and
   ``javascript:``/``vbscript:`` URLs (and ``data:`` URLs except PNG images): a guard
   for anything the first layer missed.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pandas as pd

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>])")
# elements dropped with their content, and elements dropped alone (no content)
_DROP_WITH_CONTENT = {"script", "iframe", "object", "embed", "noscript", "template", "frame"}
_DROP = {"base", "form", "frameset", "applet", "link"}
_URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data", "poster",
              "background", "srcset", "cite", "lowsrc", "dynsrc"}
_VOID = {"area", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}


def text(value: object, *, markdown: bool = True) -> str:
    """``value`` as text that renders literally: HTML special characters escaped and,
    with ``markdown=True``, Markdown's punctuation backslash-escaped (a segment named
    ``*top*`` stays ``*top*``, ``[x](javascript:...)`` is no link)."""
    if not markdown:
        return html.escape(str(value), quote=True)
    # text content: an apostrophe stays one (html.escape's "&#x27;" would have its "#"
    # backslash-escaped below and show as the literal "&#x27;"); quotes as "&quot;"
    out = html.escape(str(value), quote=False).replace('"', "&quot;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", out)


def escaped(styler):
    """The ``Styler`` with its index, column labels, index names and text cells escaped
    for HTML (number formats set with ``.format`` are kept). Returns the same object."""
    frame = styler.data
    styler.format_index(escape="html", axis=0)
    styler.format_index(escape="html", axis=1)
    if hasattr(styler, "format_index_names"):  # pandas >= 3
        styler.format_index_names(escape="html", axis=0)
        styler.format_index_names(escape="html", axis=1)
    texts = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if texts:
        styler.format(escape="html", subset=texts, na_rep="-")
    if styler.caption is not None:
        styler.set_caption(html.escape(str(styler.caption)))
    return styler


def _styler_html(styler) -> str:
    return escaped(styler).to_html()


def escape_tables() -> None:
    """In a notebook: every ``Styler`` shown from now on is shown by :func:`escaped`
    (an IPython display formatter; outside IPython nothing happens)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the report
        return
    shell = get_ipython()
    if shell is None:
        return
    from pandas.io.formats.style import Styler

    shell.display_formatter.formatters["text/html"].for_type(Styler, _styler_html)


def _safe_url(name: str, value: str) -> bool:
    compact = re.sub(r"[\s\x00-\x1f]+", "", html.unescape(value)).lower()
    if compact.startswith(("javascript:", "vbscript:")):
        return False
    if compact.startswith("data:"):
        return name == "src" and compact.startswith("data:image/png;base64,")
    return True


class _Sanitizer(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self.skip = 0  # depth inside a dropped element
        self.skip_tag = ""
        self.removed = 0

    def _attrs(self, tag, attrs) -> str:
        kept = []
        for name, value in attrs:
            name = name.lower()
            if name.startswith("on") or name in ("srcdoc", "formaction"):
                self.removed += 1
                continue
            if value is not None and name in _URL_ATTRS and not _safe_url(name, value):
                self.removed += 1
                continue
            if name == "style" and value and re.search(r"expression\s*\(|url\s*\(", value, re.I):
                self.removed += 1
                continue
            if value is None:
                kept.append(f" {name}")
            else:
                kept.append(f' {name}="{html.escape(value, quote=True)}"')
        return "".join(kept)

    def _dropped(self, tag, attrs) -> bool:
        if tag in _DROP:
            return True
        if tag == "meta":
            return any(n.lower() == "http-equiv" and (v or "").lower() == "refresh"
                       for n, v in attrs)
        return False

    def handle_starttag(self, tag, attrs):
        if self.skip:
            if tag == self.skip_tag:
                self.skip += 1
            return
        if tag in _DROP_WITH_CONTENT:
            self.removed += 1
            if tag not in _VOID:
                self.skip, self.skip_tag = 1, tag
            return
        if self._dropped(tag, attrs):
            self.removed += 1
            return
        self.out.append(f"<{tag}{self._attrs(tag, attrs)}>")

    def handle_startendtag(self, tag, attrs):
        if self.skip or tag in _DROP_WITH_CONTENT or self._dropped(tag, attrs):
            self.removed += not self.skip
            return
        self.out.append(f"<{tag}{self._attrs(tag, attrs)} />")

    def handle_endtag(self, tag):
        if self.skip:
            if tag == self.skip_tag:
                self.skip -= 1
            return
        if tag in _DROP_WITH_CONTENT or tag in _DROP:
            return
        self.out.append(f"</{tag}>")

    def handle_data(self, data):
        if self.skip:
            return
        if self.cdata_elem == "style":
            self.out.append(data)  # CSS: kept as is
        else:
            self.out.append(data.replace("<", "&lt;").replace(">", "&gt;"))

    def handle_entityref(self, name):
        if not self.skip:
            self.out.append(f"&{name};")

    def handle_charref(self, name):
        if not self.skip:
            self.out.append(f"&#{name};")

    def handle_decl(self, decl):
        if not self.skip:
            self.out.append(f"<!{decl}>")

    def handle_comment(self, data):  # dropped: conditional comments can carry markup
        pass

    def handle_pi(self, data):
        pass

    def unknown_decl(self, data):
        pass


def sanitize(page: str) -> str:
    """``page`` re-written without script elements, event handlers and script URLs (see
    the module docstring). Text, tables, styles and embedded PNG images are kept."""
    parser = _Sanitizer()
    parser.feed(page)
    parser.close()
    return "".join(parser.out)
