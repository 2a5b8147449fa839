"""One self-contained HTML page from ``check`` and ``bench`` results (their ``--json`` dictionaries).

Nothing on the page is fetched: the CSS is inline, plots are inline SVG (text as paths), images
are PNG data URIs, there is no script and no web font. Tables render whatever keys a result holds
(friendly names for the known ones), so a metric added to ``check`` shows up without a change here.
Every number taken from a result carries ``data-doc`` (which result), ``data-path`` (its JSON
pointer there) and ``data-value`` (the exact value), so a test — or a reader — can tie each shown
number back to the JSON.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .worst import KeptImage

__all__ = ["check_html", "bench_html", "results_html", "result_kind", "friendly_name"]

# known keys of check's and bench's results → what a reader calls them
NAMES = {
    "images": "images", "pixels": "pixels",
    "agreement_pct": "pixel agreement %",
    "agreement_within_delta_pct": "agreement within δ %",
    "delta_logit": "δ (logit)",
    "near_tie_pct": "near ties %",
    "near_tie_logit": "near-tie margin (logit)",
    "agreement_beyond_ties_pct": "agreement beyond near ties %",
    "miou_vs_reference": "mIoU of engine vs eager labels %",
    "max_abs_logit_error": "max |Δlogit|",
    "mean_abs_logit_error": "mean |Δlogit|",
    "engine_miou": "engine mIoU %", "reference_miou": "eager mIoU %", "miou_drop": "mIoU drop (points)",
    "engine_pixel_accuracy": "engine pixel accuracy %", "reference_pixel_accuracy": "eager pixel accuracy %",
    "output_shape": "output shape", "image": "image", "size": "size (H×W)",
    "iou_vs_reference": "IoU vs eager %", "engine_iou": "engine IoU %", "reference_iou": "eager IoU %",
    "iou_delta": "IoU Δ (engine − eager)",
    "ground_truth": "ground truth", "label_path": "labels of infer's path", "worst_image": "worst image",
    # check metrics
    "pixel_agreement": "pixel agreement %", "label_path_agreement": "labels of infer's path agree %",
    "max_logit_error": "max |Δlogit|", "agreement_within_delta": "agreement within δ %",
    "worst_image_within_delta": "worst image, agreement within δ %", "class_iou_drop": "largest class IoU drop",
    # bench
    "p50_ms": "p50 ms", "p90_ms": "p90 ms", "p99_ms": "p99 ms", "mean_ms": "mean ms", "std_ms": "std ms",
    "min_ms": "min ms", "max_ms": "max ms", "cv": "cv", "images_per_s": "img/s",
    "peak_rss_mib": "peak RSS MiB", "engine_rss_mib": "engine RSS MiB (+)", "labels_engine_rss_mib": "labels path RSS MiB (+)",
    "rss_ratio": "memory ratio", "labels_rss_ratio": "labels memory ratio",
    "torch_device_peak_mib": "GPU torch peak MiB", "device_in_use_delta_mib": "GPU in use (+) MiB",
    # machine
    "cpu": "CPU", "cpu_isa": "ISA flags", "logical_cpus": "logical CPUs", "cpus": "CPUs", "torch_threads": "torch threads",
    "omp_num_threads": "OMP_NUM_THREADS", "gpu": "GPU", "platform": "OS", "python": "Python", "versions": "versions",
    "loadavg_before": "load average before", "loadavg_after": "load average after",
}
SET_SKIP = ("set", "per_image", "per_class")
IMAGE_COLUMNS = 640  # pixels: the width a worst image's input and label maps are drawn at (at most)
MAP_COLUMNS = 320  # pixels, its disagreement map: about its width on the page, so each flip shows
MANIFEST_IDENTITY = ("format", "precision", "target", "sha256", "parent_sha256", "checkpoint_sha256", "checkpoint_path",
                     "created", "input_shape", "output_kind", "output_dtype", "num_classes", "versions")

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;margin:0;color:#1f2328;
 font-size:14px;line-height:1.45;background:#fff}
main{max-width:1240px;margin:0 auto;padding:12px 24px 40px}
h1{font-size:22px;margin:8px 0} h2{font-size:18px;border-bottom:2px solid var(--line);padding-bottom:4px;margin-top:30px}
h3{font-size:15px;margin:18px 0 6px} p.note,.muted{color:var(--muted)}
nav{font-size:13px} nav a{margin-right:14px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.badge{display:inline-block;padding:2px 12px;border-radius:12px;color:#fff;font-weight:700;letter-spacing:.5px}
.pass{background:var(--ok)} .fail{background:var(--bad)}
td.ok{color:var(--ok);font-weight:600} td.bad{color:var(--bad);font-weight:700}
tr.failed td{background:#ffebe9} tr.worst td{background:#fff8c5}
svg.plot{width:100%;height:auto;display:block;margin:6px 0} svg.narrow{max-width:620px}
.quad{display:grid;grid-template-columns:repeat(4,1fr);gap:8px;margin:4px 0 14px}
.quad figure{margin:0} .quad img{width:100%;height:auto;display:block;border:1px solid var(--line)}
img.labels{image-rendering:pixelated}
figcaption{font-size:12px;color:var(--muted)}
.legend{font-size:12px;margin:4px 0} .legend span{display:inline-block;margin:2px 10px 2px 0}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid #0003}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12px}
pre{background:var(--bg);padding:8px;overflow-x:auto;white-space:pre-wrap}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0} dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-all}
@media (max-width:900px){.quad{grid-template-columns:repeat(2,1fr)}}
@media print{body{font-size:11px} main{max-width:none;padding:0} nav{display:none} .scroll{overflow:visible}
 figure,table,svg,.quad{break-inside:avoid} h2,h3{break-after:avoid} tr.failed td,tr.worst td,.badge{print-color-adjust:exact;
 -webkit-print-color-adjust:exact}}
"""


# --------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def friendly_name(key: str) -> str:
    """What a reader calls a result key (the key itself, with spaces, when unknown)."""
    return NAMES.get(key, key.replace("_", " "))


def _format(key: str, value: float | int | bool) -> str:
    """A number as the page shows it; the precision follows what the key measures."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if "agreement" in key or "within" in key or key.endswith("_pct"):
        return f"{value:.4f}"
    if key.endswith("_logit") or "logit_error" in key:
        return f"{value:.4g}"
    if "drop" in key or "delta" in key:
        return f"{value:.3f}"
    if "iou" in key or "accuracy" in key:
        return f"{value:.2f}"
    if key.endswith("_ms") or "speedup" in key or "ratio" in key or key.endswith("_per_s") or key in ("median", "p25", "p75"):
        return f"{value:.2f}"
    if key.endswith("_mib"):
        return f"{value:.1f}"
    if key == "cv":
        return f"{value:.3f}"
    return f"{value:.4g}"


def _pointer(path: Sequence[str | int]) -> str:
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


class _Doc:
    """Renders the values of one result (``index`` among the page's results) as tagged cells."""

    def __init__(self, index: int, data: dict) -> None:
        self.index, self.data = index, data

    def num(self, path: Sequence[str | int], value: Any, key: str | None = None, tag: str = "td") -> str:
        """A cell (or ``tag``) for a value at ``path``: numbers tagged with their origin, others as text."""
        key = key or str(path[-1])
        if value is None:
            return f"<{tag} class=n>—</{tag}>"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return (f'<{tag} class=n data-doc="{self.index}" data-path="{_e(_pointer(path))}" '
                    f'data-value="{_e(json.dumps(value))}">{_format(key, value)}</{tag}>')
        return f"<{tag}>{_text(value)}</{tag}>"


def _text(value: Any) -> str:
    """A non-numeric value as text: shapes as H×W, short lists joined, dicts as key value pairs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if all(isinstance(v, (int, str)) and not isinstance(v, bool) for v in value) and len(value) <= 4:
            return _e(("×" if all(isinstance(v, int) for v in value) else ", ").join(str(v) for v in value))
        return _e(", ".join(str(v) for v in value))
    if isinstance(value, dict):
        return _e(", ".join(f"{k} {v}" for k, v in value.items() if v is not None))
    return _e(value)


def _table(header: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def _kv(doc: _Doc, path: Sequence[str | int], data: dict, keys: Sequence[str] | None = None) -> str:
    """A key/value list of ``data`` (all its keys, or ``keys`` that it has)."""
    items = []
    for k in keys or list(data):
        if k not in data or data[k] is None or data[k] == {} or data[k] == []:
            continue
        value = data[k]
        cell = doc.num([*path, k], value, tag="dd") if isinstance(value, (int, float)) else f"<dd>{_text(value)}</dd>"
        items.append(f"<dt>{_e(friendly_name(k))}</dt>{cell}")
    return f'<dl class="kv">{"".join(items)}</dl>'


def _page(title: str, nav: Sequence[tuple[str, str]], sections: Sequence[str]) -> str:
    links = "".join(f'<a href="#{_e(anchor)}">{_e(label)}</a>' for anchor, label in nav)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
            f"<h1>{_e(title)}</h1>" + (f"<nav>{links}</nav>" if len(nav) > 1 else "") + "".join(sections)
            + "</main></body></html>\n")


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
def _flatten_set(s: dict) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of a set's scalar metrics; nested dicts (ground truth, label path, worst image)
    one level down. The worst image contributes its name and agreements only (its row is below)."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for k, v in s.items():
        if k in SET_SKIP:
            continue
        if isinstance(v, dict):
            for k2, v2 in v.items():
                if k == "worst_image" and not (k2 == "image" or "agreement" in k2):
                    continue
                if not isinstance(v2, dict):
                    out.append(((k, k2), v2))
        elif v is not None:
            out.append(((k,), v))
    return out


def _row_label(path: tuple[str, ...]) -> str:
    return " · ".join(friendly_name(p) for p in path)


def _checks_table(doc: _Doc, checks: list[dict]) -> str:
    rows = []
    for i, c in enumerate(checks):
        metric = c.get("metric", "")
        ok = bool(c.get("passed"))
        rows.append(f'<tr class="{"" if ok else "failed"}"><td>{_e(c.get("set", ""))}</td>'
                    f'<td>{_e(friendly_name(metric))} <code class=muted>{_e(metric)}</code></td>'
                    + doc.num(["checks", i, "value"], c.get("value"), key=metric)
                    + doc.num(["checks", i, "threshold"], c.get("threshold"), key=metric)
                    + f'<td class="{"ok" if ok else "bad"}">{"✓ pass" if ok else "✗ FAIL"}</td>'
                    f'<td>{_e(c.get("message", ""))}</td></tr>')
    return _table(["image set", "check", "value", "threshold", "result", "message"], rows, "checks")


def _sets_table(doc: _Doc, sets: list[dict]) -> str:
    order: list[tuple[str, ...]] = []
    values: list[dict[tuple[str, ...], Any]] = []
    for s in sets:
        flat = dict(_flatten_set(s))
        values.append(flat)
        order += [p for p in flat if p not in order]
    rows = []
    for path in order:
        cells = "".join(doc.num(["sets", i, *path], flat[path], key=path[-1]) if path in flat else "<td class=n>—</td>"
                        for i, flat in enumerate(values))
        rows.append(f"<tr><th>{_e(_row_label(path))}</th>{cells}</tr>")
    return _table(["metric", *[s["set"] for s in sets]], rows, "sets")


def _per_image_table(doc: _Doc, set_index: int, s: dict) -> str:
    images = s.get("per_image") or []
    columns: list[str] = []
    for row in images:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, dict)]
    worst = (s.get("worst_image") or {}).get("image")
    rows = []
    for j, row in enumerate(images):
        cells = "".join(doc.num(["sets", set_index, "per_image", j, k], row.get(k), key=k) for k in columns)
        rows.append(f'<tr class="{"worst" if row.get("image") == worst else ""}">{cells}</tr>')
    return _table([friendly_name(c) for c in columns], rows, "per-image")


def _per_class(doc: _Doc, set_index: int, s: dict) -> str:
    per_class = s.get("per_class") or {}
    if not per_class:
        return ""
    svg = plots.class_iou_svg(per_class, s["set"]) or ""
    keys: list[str] = []
    for pc in per_class.values():
        keys += [k for k in pc if k not in keys]
    rows = [f"<tr><th>{_e(name)}</th>" + "".join(doc.num(["sets", set_index, "per_class", name, k], pc.get(k), key=k)
                                                 for k in keys) + "</tr>" for name, pc in per_class.items()]
    return (svg + f"<details><summary>per-class numbers, {_e(s['set'])}</summary>"
            + _table(["class", *[friendly_name(k) for k in keys]], rows, "per-class") + "</details>")


def _delta(result: dict) -> float | None:
    """The logit margin the report marks on the disagreement scale: δ of 'agreement within δ' where
    the result has it, else the near-tie margin."""
    for s in result.get("sets", []):
        for key in ("delta_logit", "near_tie_logit"):
            if isinstance(s.get(key), (int, float)):
                return float(s[key])
    return None


def _palette(result: dict) -> tuple[list[list[int]], list[str]]:
    manifest = (result.get("engine") or {}).get("manifest") or {}
    if manifest.get("palette") and manifest.get("class_names"):
        return manifest["palette"], manifest["class_names"]
    from ..labels import CLASS_NAMES, NUM_CLASSES, PALETTE

    return PALETTE[:NUM_CLASSES].tolist(), list(CLASS_NAMES)


def _worst_images(doc: _Doc, result: dict, worst: Sequence[KeptImage] | None) -> str:
    if worst is None:
        return ('<p class="note">The pictures of the least-agreeing images are drawn by <code>icnet-deploy check '
                '--html</code>, which has the pixels at hand; a <code>--json</code> result holds numbers only.</p>')
    if not worst:
        return '<p class="note">No image was checked.</p>'
    palette, class_names = _palette(result)
    delta = _delta(result)
    vmax = plots.gap_scale([k.gap for k in worst], floor=2 * (delta or 0.05))
    set_index = {s["set"]: i for i, s in enumerate(result.get("sets", []))}
    present: set[int] = set()
    blocks = []
    for kept in worst:
        width = kept.gap.shape[1]
        image, ref, eng, _ = plots.downscale(math.ceil(width / IMAGE_COLUMNS), kept.input, kept.reference,
                                             kept.engine, kept.gap)
        small = plots.downscale(math.ceil(width / MAP_COLUMNS), kept.input, kept.reference, kept.engine, kept.gap)
        present |= set(np.unique(ref).tolist()) | set(np.unique(eng).tolist())
        i = set_index.get(kept.set)
        rows = (result["sets"][i].get("per_image") or []) if i is not None else []
        j = next((j for j, r in enumerate(rows) if r.get("image") == kept.image), None)
        agreement = (doc.num(["sets", i, "per_image", j, "agreement_pct"], rows[j]["agreement_pct"], tag="span")
                     if j is not None else f"{kept.agreement_pct:.4f}")
        flipped = kept.flipped
        shape = "×".join(map(str, kept.gap.shape))
        panels = [("input (as the engine sees it)", plots.png_data_uri(image), ""),
                  ("eager fp32 labels", plots.png_data_uri(plots.labels_rgb(ref, palette)), "labels"),
                  ("engine labels", plots.png_data_uri(plots.labels_rgb(eng, palette)), "labels"),
                  (f"disagreement: {flipped} pixels flipped", plots.png_data_uri(
                      plots.disagreement_rgb(*small, vmax)), "labels")]
        figures = "".join(f'<figure><img class="{cls}" src="{uri}" alt="{_e(caption)}, {_e(kept.image)}">'
                          f"<figcaption>{_e(caption)}</figcaption></figure>" for caption, uri, cls in panels)
        blocks.append(f'<h3>{_e(kept.set)} · {_e(kept.image)} — agreement {agreement} %, '
                      f'{flipped} of {kept.gap.size} pixels flipped ({shape}), largest gap '
                      f'{float(kept.gap.max()):.3g}</h3><div class="quad">{figures}</div>')
    legend = "".join(f'<span><i style="background:rgb({",".join(map(str, palette[c]))})"></i>{_e(class_names[c])}</span>'
                     for c in sorted(present) if c < len(palette) and c < len(class_names))
    return ('<p class="note">Per image set, the images of lowest pixel agreement. In the disagreement map the '
            'image is dimmed and each flipped pixel is coloured by how far below eager\'s best class score the '
            "engine's class scored (larger images: each shown pixel is the largest gap of the pixels it covers).</p>"
            + plots.gap_colorbar_svg(vmax, delta) + f'<div class="legend">{legend}</div>' + "".join(blocks))


def _analysis(doc: _Doc, result: dict) -> str:
    """The optional layerwise and INT8-breakdown results, as tables."""
    parts = []
    lw = result.get("layerwise")
    if lw:
        first = lw.get("first_divergence")
        rows = []
        layers = lw.get("layers") or []
        k = next((i for i, r in enumerate(layers) if r.get("exceeds")), None)
        shown = range(max(0, k - 3), min(len(layers), k + 4)) if k is not None else range(max(0, len(layers) - 5), len(layers))
        for i in shown:
            r = layers[i]
            rows.append(f'<tr class="{"failed" if r.get("exceeds") else ""}"><td class=n>{i}</td><td>{_e(r.get("name"))}</td>'
                        f'<td>{_e(r.get("op"))}</td><td>{_text(r.get("shape"))}</td>'
                        + doc.num(["layerwise", "layers", i, "rel_error"], r.get("rel_error"))
                        + doc.num(["layerwise", "layers", i, "max_abs"], r.get("max_abs")) + "</tr>")
        parts.append(f"<h3>Layer by layer against {_e(lw.get('reference'))}</h3><p>first divergence: "
                     + (f"<b>{_e(first.get('node'))}</b> ({_e(first.get('op'))})" if first else "none")
                     + f" (tolerance {_e(lw.get('tolerance'))} on {_e(lw.get('metric'))})</p>"
                     + _table(["#", "tensor", "op", "shape", "rel error", "max |Δ|"], rows))
    bd = result.get("int8_breakdown")
    if bd:
        steps = list((bd.get("sets") or [{}])[0].get("agreement_pct", {}))
        losses = list((bd.get("sets") or [{}])[0].get("lost_pct", {}))
        rows = [f"<tr><td>{_e(s.get('set'))}</td>"
                + "".join(doc.num(["int8_breakdown", "sets", i, "agreement_pct", k], s["agreement_pct"].get(k), key="agreement")
                          for k in steps)
                + "".join(doc.num(["int8_breakdown", "sets", i, "lost_pct", k], s["lost_pct"].get(k), key="agreement")
                          for k in losses) + "</tr>" for i, s in enumerate(bd.get("sets") or [])]
        parts.append(f"<h3>INT8 breakdown against {_e(bd.get('reference'))}</h3>"
                     + _table(["image set", *[f"agreement % {k}" for k in steps], *[f"lost % to {k}" for k in losses]], rows)
                     + (f'<p class="note">{_e(bd.get("note"))}</p>' if bd.get("note") else ""))
    return "".join(parts)


def _identity(doc: _Doc, result: dict) -> str:
    engine = {k: v for k, v in (result.get("engine") or {}).items() if k != "manifest"}
    manifest = (result.get("engine") or {}).get("manifest") or {}
    out = "<h3>Engine</h3>" + _kv(doc, ["engine"], engine)
    if manifest:
        out += ("<h3>Engine manifest</h3>" + _kv(doc, ["engine", "manifest"], manifest, MANIFEST_IDENTITY)
                + f"<details><summary>build details</summary><pre>{_e(json.dumps(manifest.get('details'), indent=1))}"
                f"</pre></details>")
    out += "<h3>Reference</h3>" + _kv(doc, ["reference"], result.get("reference") or {})
    if result.get("environment"):
        out += "<h3>Machine</h3>" + _kv(doc, ["environment"], result["environment"])
    out += "<h3>Thresholds</h3>" + _kv(doc, ["thresholds"], result.get("thresholds") or {})
    if "seconds" in result:
        out += _kv(doc, [], {"seconds": result["seconds"]})
    if result.get("notes"):
        out += "<ul>" + "".join(f"<li>{_e(n)}</li>" for n in result["notes"]) + "</ul>"
    return out


def _check_section(doc: _Doc, anchor: str, worst: Sequence[KeptImage] | None) -> tuple[str, str]:
    r = doc.data
    engine = r.get("engine") or {}
    checks = r.get("checks") or []
    passed = bool(r.get("passed", all(c.get("passed") for c in checks)))
    name = Path(engine["artifact"]).name if engine.get("artifact") else engine.get("name") or "engine"
    title = f"check {name}"
    header = (f'<h2 id="{anchor}">Parity: {_e(name)} <span class="badge {"pass" if passed else "fail"}">'
              f'{"PASSED" if passed else "FAILED"}</span></h2>'
              f"<p>{_e(engine.get('precision', r.get('precision', '')))} · {_e(engine.get('provider', ''))} · "
              f"{_e(engine.get('device', ''))} against eager fp32 ({_e((r.get('reference') or {}).get('checkpoint', ''))}): "
              f"{sum(bool(c.get('passed')) for c in checks)} of {len(checks)} checks passed.</p>")
    body = [header, "<h3>Gated checks</h3>", _checks_table(doc, checks)]
    sets = r.get("sets") or []
    if sets:
        body += ["<h3>Per image set</h3>", _sets_table(doc, sets)]
    body += ["<h3>Where the engine disagrees</h3>", _worst_images(doc, r, worst)]
    if sets:
        body.append("<h3>Per class</h3>")
        body += [_per_class(doc, i, s) for i, s in enumerate(sets)]
        for i, s in enumerate(sets):
            body += [f"<h3>Per image: {_e(s['set'])}</h3>", _per_image_table(doc, i, s)]
    body += [_analysis(doc, r), _identity(doc, r)]
    return title, f'<section class="check">{"".join(body)}</section>'


# --------------------------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------------------------
def _bench_section(doc: _Doc, anchor: str) -> tuple[str, str]:
    r = doc.data
    engines = r.get("engines") or []
    modes = [m for m in ("compute", "end_to_end") if engines and m in engines[0]]
    base = r.get("baseline")
    size = "×".join(map(str, r.get("size") or []))
    title = f"bench {', '.join(e['name'] for e in engines)}"
    body = [f'<h2 id="{anchor}">Benchmark: {len(engines)} engines at {_e(size)}</h2>'
            f"<p>batch {_e(r.get('batch'))} · {_e(r.get('iters'))} timed iterations (+{_e(r.get('warmup'))} warm-up), "
            f"interleaved round-robin · device {_e(r.get('device'))}" + (f" · baseline <b>{_e(base)}</b>" if base else "")
            + "</p>"]
    stats = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "cv", "images_per_s")
    files = "".join(f"<dt>{_e(e['name'])}</dt><dd>{_e(e['spec'])}</dd>" for e in engines if e.get("spec") != e["name"])
    body.append(f'<dl class="kv">{files}</dl>')
    for mode in modes:
        rows = []
        for k, e in enumerate(engines):
            d = e.get("describe") or {}
            noisy = e[mode].get("noisy")
            attrs = ' class="worst" title="noisy: std above 10% of the mean"' if noisy else ""
            rows.append(f"<tr{attrs}><th>{_e(e['name'])}</th><td>{_e(d.get('provider'))} ({_e(d.get('precision'))})</td>"
                        f"<td>{_text(e.get('input_size'))}</td>"
                        + "".join(doc.num(["engines", k, mode, s], e[mode].get(s), key=s) for s in stats) + "</tr>")
        body += [f"<h3>Latency, {_e(plots.MODE_LABELS.get(mode, mode))}</h3>",
                 _table(["engine", "runs on", "input", *[friendly_name(s) for s in stats]], rows, "latency")]
    if any(e[m].get("noisy") for e in engines for m in modes):
        body.append('<p class="note">Highlighted: noisy (std above 10% of the mean): the machine was busy; '
                    "compare the per-round speed-ups (interquartile range below), which cancel load that changes "
                    "between rounds.</p>")
    body += ["<h3>Latency distribution over the timed iterations</h3>", plots.latency_svg(engines, modes)]
    body += _ratios(doc, engines, modes, base)
    env = r.get("environment") or {}
    shown = [k for k in env if not (k == "cpus" and "logical_cpus" in env)
             and not (k == "python" and "python" in (env.get("versions") or {}))]
    body += ["<h3>Machine</h3>", _kv(doc, ["environment"], env, shown),
             f"<p>threads: {_e((r.get('method') or {}).get('threads', '—'))}</p>"]
    notes = [f"{e['name']}: {e['note']}" for e in engines if e.get("note")]
    if notes:
        body.append("<ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    if r.get("method"):
        body.append("<details><summary>method</summary>" + _kv(doc, ["method"], r["method"]) + "</details>")
    return title, f'<section class="bench">{"".join(body)}</section>'


def _ratios(doc: _Doc, engines: list[dict], modes: list[str], base: str | None) -> list[str]:
    """Speed-up and memory: a table, then the bars (vs eager, vs the baseline engine)."""
    against = [("vs_eager", "eager")] + ([("vs_baseline", base)] if base else [])
    header = ["engine"]
    for key, who in against:
        header += [f"{plots.MODE_LABELS.get(m, m).split(' (')[0]} speed-up vs {who}" for m in modes]
        header += [f"compute, IQR of the per-round speed-ups vs {who}"]
    mem_keys = ("peak_rss_mib", "engine_rss_mib", "labels_engine_rss_mib", "torch_device_peak_mib")
    header += [friendly_name(k) for k in mem_keys] + ["memory vs eager"] + (["parity"] if any("parity" in e for e in engines) else [])
    rows = []
    for k, e in enumerate(engines):
        cells = [f"<th>{_e(e['name'])}</th>"]
        for key, _ in against:
            vs = e.get(key) or {}
            cells += [doc.num(["engines", k, key, f"{m}_speedup"], vs.get(f"{m}_speedup")) for m in modes]
            cells.append(_iqr_cell(doc, ["engines", k, key, "compute_speedup_paired"], vs.get("compute_speedup_paired")))
        mem = e.get("memory") or {}
        if "error" in mem:
            cells.append(f'<td colspan="{len(mem_keys)}" class="bad">memory probe failed: {_e(mem["error"])}</td>')
        else:
            cells += [doc.num(["engines", k, "memory", m], mem.get(m)) for m in mem_keys]
        cells.append(doc.num(["engines", k, "vs_eager", "rss_ratio"], (e.get("vs_eager") or {}).get("rss_ratio")))
        if "parity" in header:
            p = e.get("parity")
            cells.append("<td>baseline</td>" if p is None else f"<td>not checked: {_e(p['error'])}</td>" if "error" in p
                         else f'<td class="{"ok" if p.get("passed") else "bad"}">{"pass" if p.get("passed") else "FAIL"} '
                         + doc.num(["engines", k, "parity", "agreement_pct"], p.get("agreement_pct"), tag="span") + " %</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out = ["<h3>Speed-up and memory</h3>", _table(header, rows, "ratios")]
    for key, who in against:
        out.append(plots.ratio_bars_svg(engines, key, modes, who))
    if any("engine_rss_mib" in (e.get("memory") or {}) for e in engines):
        out.append(plots.memory_svg(engines, base))
    return out


def _iqr_cell(doc: _Doc, path: list, paired: dict | None) -> str:
    """The interquartile range of the per-round speed-ups, ``p25–p75``."""
    if not paired:
        return "<td class=n>—</td>"
    return ("<td class=n>" + doc.num([*path, "p25"], paired["p25"], tag="span") + "–"
            + doc.num([*path, "p75"], paired["p75"], tag="span") + "</td>")


# --------------------------------------------------------------------------------------------
# pages
# --------------------------------------------------------------------------------------------
def result_kind(data: Any) -> str | None:
    """"check", "bench" or None for a dictionary that is neither's ``--json`` result."""
    if isinstance(data, dict) and isinstance(data.get("checks"), list) and isinstance(data.get("sets"), list):
        return "check"
    if isinstance(data, dict) and isinstance(data.get("engines"), list) and "environment" in data:
        return "bench"
    return None


def results_html(results: Sequence[dict], worst: dict[int, Sequence[KeptImage]] | None = None,
                 title: str | None = None) -> str:
    """One page for several results (check and bench ``--json`` dictionaries, in order);
    ``worst``: the kept images of the check results that have them, by index."""
    sections, nav = [], []
    for i, data in enumerate(results):
        kind = result_kind(data)
        anchor = f"result-{i}"
        if kind == "check":
            label, section = _check_section(_Doc(i, data), anchor, (worst or {}).get(i))
        elif kind == "bench":
            label, section = _bench_section(_Doc(i, data), anchor)
        else:
            raise ValueError(f"result {i} is neither a check nor a bench result")
        sections.append(section)
        nav.append((anchor, label))
    if title is None:
        title = f"icnet-deploy {nav[0][1]}" if len(nav) == 1 else "icnet-deploy report"
    return _page(title, nav, sections)


def check_html(result: dict, worst: Sequence[KeptImage] | None = None) -> str:
    """The page of one ``check`` result (``CheckReport.to_dict()``), with the ``WorstImages`` it kept."""
    return results_html([result], {0: worst} if worst is not None else None)


def bench_html(result: dict) -> str:
    """The page of one ``bench`` result (``BenchReport.to_dict()``, with ``parity`` when checked)."""
    return results_html([result])
