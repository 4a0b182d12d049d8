"""The live component (attnlib/zoo/live.py) in headless Chromium: time to the first live result, time per
further inference, and what a live page downloads on top of a static one (gzipped).

    .venv/bin/python benchmarks/bench_live.py [--rounds 3] [--pages se.html nonlocal.html zoo.html]

Needs the built site (`make book`) and /usr/bin/chromium (as tests/test_site.py). The site is served from
127.0.0.1 by Python's http.server (as `make serve`), every page opened in a fresh browser context (cold
cache). Targets (issue 12): first result within 2 s of page load, each further inference within 50 ms,
extra download at most 6 MB gzipped, only on pages that use it.

- first result: ``performance.now()`` when the first scene's maps are drawn (from navigation start), and
  the same from the page's ``load`` event;
- per inference: ``attnlibLive.infer`` on a 64 × 64 test scene, 30 calls after 3 warm-up calls, median and
  95th percentile, for the page's model and for every zoo model (onnxruntime-web, wasm, one thread);
- extra download: every file fetched under ``vendor/onnxruntime-web/`` and ``live/``, gzipped (level 6, as
  a web server would) from the built site.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import json
import statistics
import threading
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"

_TIME = """async ([name, n, img]) => {
  const e = document.querySelector('.attnlib-live');
  for (let i = 0; i < 3; i++) { await e.attnlibLive.infer(name, img, 64, 64); }
  const t = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await e.attnlibLive.infer(name, img, 64, 64);
                                t.push(performance.now() - t0); }
  return t;
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 6))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pages", nargs="+", default=["se.html", "nonlocal.html", "zoo.html"])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (SITE / "index.html").exists():
        raise SystemExit("build the site first: make book")
    from playwright.sync_api import sync_playwright

    from attnlib.zoo import pipeline

    img = (pipeline.test_set(1).images[0].transpose(2, 0, 1).reshape(-1) / 255).tolist()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    # a page name may omit its folder (the chapters are under book/)
    args.pages = [pg if (SITE / pg).is_file() else next(p.relative_to(SITE).as_posix() for p in SITE.rglob(pg))
                  for pg in args.pages]
    results: dict = {"pages": {}, "models": {}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        for page_path in args.pages:
            firsts, from_load, infer, extra, static, timings = [], [], [], {}, 0, []
            for r in range(args.rounds):
                ctx = browser.new_context(service_workers="block")
                page = ctx.new_page()
                urls: list[str] = []
                page.on("request", lambda q: urls.append(q.url))
                page.goto(base + page_path, wait_until="load")
                page.wait_for_selector(".attnlib-live[data-state=ready]", timeout=60_000)
                el = page.locator(".attnlib-live").first
                first = float(el.get_attribute("data-first-result-ms"))
                load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                firsts.append(first)
                timings.append(json.loads(el.get_attribute("data-timings")) | {"load_event": round(load)})
                from_load.append(first - load)
                model = el.get_attribute("data-model")
                if r == 0:
                    infer = page.evaluate(_TIME, [model, 30, img])
                    for u in urls:
                        path = urlsplit(u).path.lstrip("/")
                        f = SITE / path
                        if f.is_file() and (path.startswith("vendor/onnxruntime-web/") or path.startswith("live/")):
                            extra[path] = _gz(f)
                        elif f.is_file() and f.suffix != ".html":
                            static += _gz(f)
                    if page_path == args.pages[-1]:
                        for name in json.loads(el.get_attribute("data-models")):
                            t = page.evaluate(_TIME, [name, 30, img])
                            results["models"][name] = {"median_ms": round(statistics.median(t), 2),
                                                       "p95_ms": round(sorted(t)[int(0.95 * len(t)) - 1], 2)}
                ctx.close()
            results["pages"][page_path] = {
                "model": model,
                "first_result_ms_from_navigation": [round(v) for v in firsts],
                "first_result_ms_after_load_event": [round(v) for v in from_load],
                "timings_ms_from_navigation": timings,
                "inference_median_ms": round(statistics.median(infer), 2),
                "inference_p95_ms": round(sorted(infer)[int(0.95 * len(infer)) - 1], 2),
                "extra_download_gzip_MB": round(sum(extra.values()) / 1e6, 2),
                "extra_files": {k: round(v / 1e6, 3) for k, v in sorted(extra.items())},
                "other_assets_gzip_MB": round(static / 1e6, 2)}
        browser.close()
    httpd.shutdown()
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print("| page | model | first result (ms from navigation; rounds) | from the load event | inference median / p95 (ms) | extra download, gzip (MB) |")
    print("|---|---|---|---|---|---|")
    for pg, r in results["pages"].items():
        print(f"| {pg} | {r['model']} | {', '.join(map(str, r['first_result_ms_from_navigation']))} | "
              f"{', '.join(map(str, r['first_result_ms_after_load_event']))} | {r['inference_median_ms']} / "
              f"{r['inference_p95_ms']} | {r['extra_download_gzip_MB']} |")
    if results["models"]:
        ms = results["models"]
        worst = max(ms, key=lambda k: ms[k]["median_ms"])
        print(f"\nper model (median of 30 calls, 64x64): fastest {min(v['median_ms'] for v in ms.values())} ms, "
              f"slowest {ms[worst]['median_ms']} ms ({worst}, p95 {ms[worst]['p95_ms']} ms)")
        print(json.dumps(ms))
    for pg, r in results["pages"].items():
        print(f"{pg}: extra files {r['extra_files']}")
        print(f"{pg}: ms from navigation start (script ran, runtime and data loaded, session created, first "
              f"result drawn; load event): {r['timings_ms_from_navigation']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
