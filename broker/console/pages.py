"""HTML pages: small templates in which every `{{ value }}` is escaped unless it is Markup.

The pages are shells (headings, forms, empty tables); the browser fills them from the JSON API
with DOM text nodes. So the server interpolates little (a name or id, the CSRF token), and all
of it through `render`, which escapes by default: a value can only be inserted raw by being
Markup, which only `render` itself and the fixed snippets here produce.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from importlib import resources

_FIELD = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class Markup(str):
    """HTML that is already safe: the output of `render`."""


def escape(value: object) -> str:
    return value if isinstance(value, Markup) else html.escape(str(value), quote=True)


@lru_cache(maxsize=None)
def template(name: str) -> str:
    return resources.files(__package__).joinpath("templates", name).read_text("utf-8")


def render(name: str, **values: object) -> Markup:
    """Fill template `name`; a missing value is a bug and raises KeyError."""
    return Markup(_FIELD.sub(lambda m: escape(values[m.group(1)]), template(name)))


def csrf_field(token: str) -> Markup:
    return Markup(f'<input type="hidden" name="csrf" value="{html.escape(token, quote=True)}">')


def page(kind: str, title: str, csrf: str, with_logout: bool, subject: str = "", **values: object) -> str:
    """A whole console page: `kind`.html inside base.html."""
    field = csrf_field(csrf)
    body = render(f"{kind}.html", subject=subject, csrf_field=field, **values)
    logout = render("logout.html", csrf_field=field) if with_logout else Markup("")
    return render("base.html", title=title, page=kind, subject=subject, csrf=csrf, body=body, logout=logout)


def not_found(kind: str, subject: str, csrf: str, with_logout: bool) -> str:
    body = render("notfound.html", kind=kind, subject=subject)
    logout = render("logout.html", csrf_field=csrf_field(csrf)) if with_logout else Markup("")
    return render("base.html", title="Not found", page="notfound", subject="", csrf=csrf, body=body, logout=logout)


def login(next_path: str, error: str = "") -> str:
    return render("login.html", next=next_path, error=error)
