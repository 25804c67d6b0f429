"""A Sphinx extension of this book: each page lists each script once.

sphinx-thebe 0.3.1 registers its inline configuration script (``const THEBE_JS_URL = ...``)
through ``app.add_js_file`` after the HTML builder has copied the registry's scripts, so with
current Sphinx every page gets it twice and the browser reports ``SyntaxError: Identifier
'THEBE_JS_URL' has already been declared`` (seen in headless Chromium by tests/test_browser.py).
Dropping exact duplicates before a page is written removes the error and changes nothing else.
"""

from __future__ import annotations


def _script_key(script) -> tuple:
    """What makes a script tag: its file (the two copies differ only in None vs "") and attributes."""
    if isinstance(script, str):
        return script, ()
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", None) or "",
            tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
