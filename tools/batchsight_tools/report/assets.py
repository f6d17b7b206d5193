"""The page's inline style and script.

Both are inline so the file needs nothing else; the page's Content-Security-Policy allows
exactly these two by their SHA-256 (see ``render``), so nothing injected into the page runs.
"""
from __future__ import annotations

STYLE = """
:root { color-scheme: light; --ink: #1d2327; --muted: #5f6b73; --line: #d7dde1; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.scope { color: var(--muted); margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 28px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 13px; }
.card.alert .value { color: var(--bad); }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 14px 5px 0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; background: #fafbfb; }
figure img { display: block; width: 100%; height: auto; background: #eee; }
figure .missing { padding: 40px 12px; color: var(--muted); text-align: center; background: #eee; }
figcaption { padding: 8px 10px; font-size: 13px; }
figcaption .confidence { font-size: 16px; font-weight: 650; color: var(--bad); }
figcaption .meta { color: var(--muted); word-break: break-all; }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } figure { break-inside: avoid; } }
"""

# Marks each thumbnail once it has decoded (data-loaded, data-natural-width), so a reader or a
# test can tell that the images really render; it loads nothing.
SCRIPT = """
(function () {
  function mark(img) {
    img.setAttribute("data-loaded", img.naturalWidth > 0 ? "true" : "false");
    img.setAttribute("data-natural-width", String(img.naturalWidth));
  }
  var images = document.querySelectorAll("img.thumb");
  images.forEach(function (img) {
    if (img.complete) { mark(img); }
    else { img.addEventListener("load", function () { mark(img); });
           img.addEventListener("error", function () { mark(img); }); }
  });
})();
"""

