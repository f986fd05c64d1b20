"""The one page of `rtseg view`: plain HTML, inline CSS and a few lines of plain JavaScript
(no framework, nothing fetched from the internet). Per camera: the live overlay (an MJPEG
`<img>`), its numbers (polled from `NAME/info.json` twice a second) and the legend."""

from __future__ import annotations

import html
from collections.abc import Sequence
from urllib.parse import quote

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>rtseg view: {title}</title>
<style>
body {{ font-family: sans-serif; background: #1e1e1e; color: #ddd; margin: 1em; }}
h1 {{ font-size: 1.2em; margin: 0 0 .5em; }} h2 {{ font-size: 1em; margin: .2em 0; }}
section {{ display: inline-block; vertical-align: top; margin: 0 1em 1em 0; }}
img.overlay {{ display: block; max-width: 100%; min-width: 320px; min-height: 180px;
  background: #000; }}
dl {{ display: grid; grid-template-columns: auto auto auto auto; gap: .1em .8em;
  margin: .4em 0; font-family: monospace; }}
dt {{ color: #999; }} dd {{ margin: 0; }}
ul.legend {{ list-style: none; padding: 0; margin: .3em 0; columns: 2; }}
ul.legend li {{ font-family: monospace; }}
span.swatch {{ display: inline-block; width: .9em; height: .9em; margin-right: .4em;
  vertical-align: middle; border: 1px solid #555; }}
</style></head>
<body>
<h1>rtseg view &mdash; {endpoint}</h1>
{sections}
<script>
function show(section, info) {{
  const set = (key, text) => {{
    section.querySelector('[data-key="' + key + '"]').textContent = text; }};
  const ms = (v) => (v === null ? '-' : v.toFixed(1) + ' ms');
  set('seq', info.seq === null ? 'waiting' : info.seq);
  set('fps', info.fps === null ? '-' : info.fps.toFixed(1));
  set('latency', ms(info.latency_ms));
  set('age', ms(info.age_ms));
  set('dropped', info.dropped === null ? '-' : info.dropped);
  set('state', info.state || '-');
  set('view_fps', info.view_fps.toFixed(1));
  set('input', info.seq === null ? '-' : (info.shows ||
      (info.over_image ? 'image + masks' : 'masks only')));
  const legend = section.querySelector('ul.legend');
  const key = JSON.stringify(info.legend);
  if (legend.dataset.key === key) return;
  legend.dataset.key = key;
  legend.replaceChildren(...info.legend.map((c) => {{
    const li = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = 'swatch'; swatch.style.background = c.rgb;
    li.append(swatch, c.name); li.dataset.rgb = c.rgb; return li;
  }}));
}}
async function poll() {{
  for (const section of document.querySelectorAll('section[data-name]')) {{
    try {{
      const reply = await fetch(section.dataset.url + 'info.json', {{cache: 'no-store'}});
      if (reply.ok) show(section, await reply.json());
    }} catch (e) {{ /* the viewer stopped; try again */ }}
  }}
  setTimeout(poll, 500);
}}
poll();
</script>
</body></html>
"""

_SECTION = """<section data-name="{name}" data-url="{url}">
<h2>{name}</h2>
<img class="overlay" src="{url}overlay.mjpg" alt="live overlay of {name}">
<dl>
<dt>seq</dt><dd data-key="seq">waiting</dd><dt>node fps</dt><dd data-key="fps">-</dd>
<dt>latency</dt><dd data-key="latency">-</dd><dt>age</dt><dd data-key="age">-</dd>
<dt>dropped</dt><dd data-key="dropped">-</dd><dt>source</dt><dd data-key="state">-</dd>
<dt>view fps</dt><dd data-key="view_fps">-</dd><dt>input</dt><dd data-key="input">-</dd>
</dl>
<ul class="legend"></ul>
</section>"""


def camera_path(name: str) -> str:
    """The URL path prefix of camera `name`: ``/NAME/`` (percent-encoded)."""
    return "/" + quote(name, safe="/") + "/"


def render_page(endpoint: str, names: Sequence[str]) -> bytes:
    """The page (UTF-8 HTML) for cameras `names` of the node at `endpoint`."""
    sections = "\n".join(_SECTION.format(name=html.escape(n), url=html.escape(camera_path(n)))
                         for n in names)
    return _PAGE.format(title=html.escape(", ".join(names)), endpoint=html.escape(endpoint),
                        sections=sections).encode("utf-8")
