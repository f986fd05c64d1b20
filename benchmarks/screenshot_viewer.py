"""Screenshot of `rtseg view` for the README, through the browser test's own code path:
a real demo node with the image topic (tests/live_node.py), the viewer on a free port, and
headless Chromium (tests/browser.py).

    python benchmarks/screenshot_viewer.py [OUT.png] [--camera FILE]
    # default benchmarks/results/viewer.png; --camera: the grid from above too
    # (python benchmarks/screenshot_viewer.py benchmarks/results/viewer-ground.png
    #  --camera launch/cameras/demo.toml)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from browser import chromium_page, wait_for_new_seq  # noqa: E402
from live_node import demo_node  # noqa: E402

from rtseg.view import ViewConfig, Viewer  # noqa: E402


def main(out: Path, cameras: tuple[str, ...] = ()) -> None:
    with demo_node(image_topic=True) as endpoint, \
            Viewer(ViewConfig(endpoint=endpoint, names=("demo",), port=0,
                              cameras=cameras)) as viewer:
        with chromium_page() as page:
            page.goto(viewer.url + "/")
            seq = wait_for_new_seq(page, "demo", None)
            wait_for_new_seq(page, "demo", seq)
            page.locator('section[data-name="demo"] ul.legend li').nth(6).wait_for()
            page.wait_for_function("""() => /^[0-9.]+$/.test(document.querySelector(
                'section[data-name="demo"] [data-key="fps"]').textContent)""")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(REPO / "benchmarks/results/viewer.png"))
    parser.add_argument("--camera", action="append", default=[])
    args = parser.parse_args()
    main(Path(args.out), tuple(args.camera))
