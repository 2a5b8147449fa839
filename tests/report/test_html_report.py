"""HTML reports: check --html, bench --html and `icnet-deploy report`, read back as HTML and in headless Chromium.

A small engine that really disagrees (the 128×256 fixture export with one conv's weights scaled)
is checked and benched through the CLI; every number the pages tag with its JSON path must equal
the JSON, and in Chromium the pages must load without console errors or network requests, with
their plots and images laid out at a non-zero size. Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from icnet_deploy.cli import app
from icnet_deploy.manifest import read_manifest, write_manifest

pytest.importorskip("matplotlib", reason="HTML reports need the [report] extra (matplotlib)")

cli = CliRunner()
SCALED_CONV = 24  # index among the Conv nodes: a mid-network conv whose ×1.2 flips a few per cent of the pixels
KEPT_PER_SET = 2  # WorstImages' default


@pytest.fixture(scope="module")
def disagreeing_engine(tmp_path_factory, small_onnx) -> Path:
    """``small_onnx`` with one conv's weights ×1.2 and a rewritten manifest (same checkpoint)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(small_onnx))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][SCALED_CONV]
    weight = {i.name: i for i in model.graph.initializer}[conv.input[1]]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.2, weight.name))
    path = tmp_path_factory.mktemp("disagreeing") / "scaled.onnx"
    onnx.save(model, str(path))
    manifest = read_manifest(small_onnx)
    manifest.parent_sha256 = manifest.sha256
    write_manifest(path, manifest)
    return path


def _json(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.fixture(scope="module")
def pages(tmp_path_factory, small_onnx, disagreeing_engine) -> dict:
    """check --html and bench --html of the two engines, their --json results, and `report` of both."""
    out = tmp_path_factory.mktemp("reports")
    check = cli.invoke(app, ["check", "--engine", str(disagreeing_engine), "--count", "2", "--threads", "1", "--json",
                             "--html", str(out / "check.html")])
    assert check.exit_code in (0, 1), check.output
    bench = cli.invoke(app, ["bench", "-e", str(small_onnx), "-e", str(disagreeing_engine), "--baseline", str(small_onnx),
                             "--iters", "4", "--warmup", "1", "--threads", "1", "--json", "--html", str(out / "bench.html")])
    assert bench.exit_code == 0, bench.output
    check_data, bench_data = _json(check), _json(bench)
    (out / "check.json").write_text(json.dumps(check_data))
    (out / "bench.json").write_text("some log line\n" + json.dumps(bench_data))  # text before the JSON is skipped
    report = cli.invoke(app, ["report", str(out / "check.json"), str(out / "bench.json"), "-o", str(out / "both.html")])
    assert report.exit_code == 0, report.output
    return {"check": (out / "check.html", [check_data]), "bench": (out / "bench.html", [bench_data]),
            "both": (out / "both.html", [check_data, bench_data])}


# --------------------------------------------------------------------------------------------
# numbers on the page = numbers in the JSON
# --------------------------------------------------------------------------------------------
class _Tagged(HTMLParser):
    """The elements that carry data-path, with their text; every src/href; script/link tags."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: list[dict] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self._open: list[tuple[str, dict | None]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if "data-path" in a:
            item = {"doc": a["data-doc"], "path": a["data-path"], "value": a["data-value"], "text": ""}
            self.numbers.append(item)
            self._open.append((tag, item))
        elif tag not in ("img", "br", "meta", "input", "hr"):
            self._open.append((tag, None))

    def handle_endtag(self, tag):
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, item in self._open:
            if item is not None:
                item["text"] += data


def _resolve(doc, pointer: str):
    for part in pointer.split("/") if pointer else []:
        part = part.replace("~1", "/").replace("~0", "~")
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _shown_equals(text: str, value: float) -> bool:
    """``text`` is ``value`` rounded to the digits shown (fixed or exponent notation)."""
    m = re.fullmatch(r"\s*([+-]?\d+)(?:\.(\d+))?(?:e([+-]?\d+))?\s*", text)
    if m is None:
        return False
    decimals, exponent = len(m[2] or ""), int(m[3] or 0)
    return abs(float(text) - value) <= 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-9) + 1e-12


def assert_numbers_match(numbers: list[dict], docs: list[dict]) -> set[tuple[int, str]]:
    """Every tagged number equals the JSON value at its path (exactly in data-value, to the shown
    digits in the text); returns the (doc, path) pairs seen."""
    seen = set()
    for n in numbers:
        doc = int(n["doc"])
        value = _resolve(docs[doc], n["path"])
        assert json.loads(n["value"]) == value, n
        assert _shown_equals(n["text"], value), f"{n['path']}: page shows {n['text']!r}, JSON has {value!r}"
        seen.add((doc, n["path"]))
    return seen


def _parse(path: Path) -> _Tagged:
    parser = _Tagged()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _must_show_check(data: dict, doc: int = 0) -> set[tuple[int, str]]:
    """The numbers a check page must show: every gated check's value and threshold, every set's and
    every image's metrics."""
    want = {(doc, f"checks/{i}/{k}") for i, c in enumerate(data["checks"]) for k in ("value", "threshold")
            if c[k] is not None}
    for i, s in enumerate(data["sets"]):
        want |= {(doc, f"sets/{i}/{k}") for k, v in s.items() if isinstance(v, float)}
        want |= {(doc, f"sets/{i}/per_image/{j}/{k}") for j, row in enumerate(s["per_image"])
                 for k, v in row.items() if isinstance(v, float)}
    return want


def _must_show_bench(data: dict, doc: int = 0) -> set[tuple[int, str]]:
    want = set()
    for k, e in enumerate(data["engines"]):
        for mode in ("compute", "end_to_end"):
            want |= {(doc, f"engines/{k}/{mode}/{s}") for s in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "images_per_s")}
        want |= {(doc, f"engines/{k}/vs_eager/compute_speedup"), (doc, f"engines/{k}/vs_baseline/compute_speedup"),
                 (doc, f"engines/{k}/memory/engine_rss_mib")}
    return want


def test_check_page_shows_the_json_numbers_and_the_worst_images(pages):
    path, (data,) = pages["check"]
    page = _parse(path)
    seen = assert_numbers_match(page.numbers, [data])
    assert _must_show_check(data) <= seen
    text = path.read_text()
    assert ("PASSED" if data["passed"] else "FAILED") in text
    assert not data["passed"], "the scaled conv should make the engine fail the fp32 gate"
    sets = [s for s in data["sets"] if s["images"]]
    assert page.tags.count("img") == 4 * KEPT_PER_SET * len(sets)  # input, eager, engine, disagreement map
    worst = {s["set"]: s["worst_image"]["image"] for s in sets}
    for set_name, image in worst.items():  # the worst image of each set is among those drawn
        assert f"{set_name} · {image}" in text
    assert data["environment"]["cpu"] in text and data["engine"]["manifest"]["sha256"] in text


def test_bench_page_shows_the_json_numbers(pages):
    path, (data,) = pages["bench"]
    page = _parse(path)
    seen = assert_numbers_match(page.numbers, [data])
    assert _must_show_bench(data) <= seen
    assert len(data["engines"][1]["compute"]["times_ms"]) == 4  # the per-iteration times the box plot draws
    assert page.tags.count("svg") == 4  # latency, speed-up vs eager, vs the baseline, memory
    text = path.read_text()
    assert data["environment"]["cpu"] in text and ", ".join(data["environment"]["cpu_isa"]) in text


def test_report_renders_saved_results_on_one_page(pages):
    path, docs = pages["both"]
    page = _parse(path)
    seen = assert_numbers_match(page.numbers, docs)
    assert _must_show_check(docs[0], 0) | _must_show_bench(docs[1], 1) <= seen
    text = path.read_text()
    assert "a <code>--json</code> result holds numbers only" in text  # no pixels in JSON: the page says so
    assert page.tags.count("img") == 0


@pytest.mark.parametrize("name", ["check", "bench", "both"])
def test_pages_are_self_contained(pages, name):
    path, _ = pages[name]
    page = _parse(path)
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert all(u.startswith(("data:image/png;base64,", "#")) for u in page.urls), [u[:40] for u in page.urls]
    css = re.search(r"<style>(.*?)</style>", path.read_text(), re.S)[1]
    assert "@import" not in css and "url(" not in css and "@font-face" not in css


def test_report_refuses_what_is_not_a_result(tmp_path):
    target = tmp_path / "page.html"
    (tmp_path / "broken.json").write_text("{ not json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "onnx"}))
    for name, says in (("missing.json", "file not found"), ("broken.json", "not JSON"),
                       ("other.json", "not a result of `icnet-deploy check --json` or `bench --json`")):
        result = cli.invoke(app, ["report", str(tmp_path / name), "-o", str(target)])
        assert result.exit_code == 2, result.output
        assert name in result.output and says in result.output
    assert not target.exists() and not list(tmp_path.glob(".page.html.*"))


# --------------------------------------------------------------------------------------------
# the pieces
# --------------------------------------------------------------------------------------------
def test_worst_images_keeps_the_least_agreeing_with_their_logit_gap():
    from icnet_deploy.report import WorstImages
    from icnet_deploy.report.worst import logit_gap

    logits = np.zeros((3, 2, 4), dtype=np.float32)
    logits[0] = 1.0  # eager: class 0 everywhere, class 1 close behind, class 2 far
    logits[1] = 0.75
    logits[2] = -2.0
    engine = np.zeros((2, 4), dtype=np.uint8)
    engine[0, 0], engine[1, 3] = 1, 2
    np.testing.assert_array_equal(logit_gap(logits, engine), [[0.25, 0, 0, 0], [0, 0, 0, 3.0]])

    keeper = WorstImages(per_set=2)
    image = np.zeros((4, 8, 3), dtype=np.uint8)  # resized to the labels' 2×4
    flips = {"a": 0, "b": 3, "c": 1, "d": 3}
    for name, n in flips.items():
        labels = np.zeros((2, 4), dtype=np.uint8)
        labels.reshape(-1)[:n] = 1
        keeper("scenes", name, image, logits, labels)
    keeper("photos", "p", image, logits, engine)
    kept = keeper.result()
    assert [(k.set, k.image) for k in kept] == [("scenes", "b"), ("scenes", "d"), ("photos", "p")]  # ties: first seen
    assert kept[0].agreement_pct == 100.0 * 5 / 8 and kept[0].flipped == 3 and kept[0].input.shape == (2, 4, 3)
    assert kept[2].gap.max() == 3.0


def test_machine_names_cpu_isa_and_versions():
    from icnet_deploy.machine import ISA_FLAGS, describe_machine

    info = describe_machine()
    assert info["cpu"] and info["logical_cpus"] >= 1 and set(info["cpu_isa"]) <= set(ISA_FLAGS)
    assert "python" in info["versions"] and "icnet_deploy" in info["versions"]
    if Path("/proc/cpuinfo").is_file() and "avx2" in Path("/proc/cpuinfo").read_text():
        assert "avx2" in info["cpu_isa"]


# --------------------------------------------------------------------------------------------
# in a real browser
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["check", "bench", "both"])
def test_pages_in_headless_chromium(pages, name, tmp_path):
    from PIL import Image

    from chromium_cdp import VIEWPORT, find_chromium, open_page

    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not found: install Debian's `chromium` (apt-get install chromium; .ci/run does) "
                    "or set CHROMIUM to a Chrome/Chromium executable")
    path, docs = pages[name]
    visit = open_page(path, executable, tmp_path / "chromium.log")

    assert visit.errors == [], visit.errors
    assert visit.foreign_requests() == []
    assert visit.requests and visit.requests[0] == path.resolve().as_uri()
    page = visit.page
    plots = [p for p in page["plots"] if "plot" in p["cls"]]
    per_class = len(docs[0]["sets"]) if "sets" in docs[0] else 0  # + the disagreement scale where images are drawn
    expected_plots = {"check": per_class + 1, "bench": 4, "both": per_class + 4}[name]
    assert len(plots) == expected_plots
    assert all(p["width"] > 100 and p["height"] > 40 for p in plots), plots
    images = page["images"]
    assert len(images) == (4 * KEPT_PER_SET * len(docs[0]["sets"]) if name == "check" else 0)
    for img in images:  # decoded and laid out
        assert img["complete"] and img["natural_width"] > 0 and img["width"] > 50 and img["height"] > 20, img
    numbers = page["numbers"]
    seen = assert_numbers_match(numbers, docs)
    must = {"check": lambda: _must_show_check(docs[0]), "bench": lambda: _must_show_bench(docs[0]),
            "both": lambda: _must_show_check(docs[0], 0) | _must_show_bench(docs[1], 1)}[name]()
    assert must <= seen
    if "checks" in docs[0]:
        assert ("PASSED" if docs[0]["passed"] else "FAILED") in page["text"]
    assert page["width"] <= VIEWPORT[0]  # nothing wider than a laptop screen: no sideways scrolling

    shot = tmp_path / f"{name}.png"
    shot.write_bytes(visit.screenshot)
    with Image.open(shot) as im:
        assert im.size == (VIEWPORT[0], page["height"]) and page["height"] > VIEWPORT[1]
        assert np.asarray(im.convert("L")).std() > 10  # not a blank page
