"""Collect ``bench/results/*.json`` into a markdown table and an SVG bar chart.

``python -m bench.report`` rewrites the part of ``docs/benchmarks.md``
between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` and writes
``docs/assets/benchmarks.svg`` (hand-written SVG: one panel per benchmark,
the figures measured side by side in that run, tenantkit's bars coloured).
Two tables: the real deployment (``bench/real.py``: the example app on
PostgreSQL + Redis over HTTP, one row per target) first, then the embedded
benchmarks (SQLite, in-memory stores, in process or over HTTP).

A result names its figures in ``series`` and its target ratio in
``headline`` (see ``bench/common.py``). For a result without them the report
falls back to the keys' suffixes (``_us``, ``_ms``, ``_per_s``...) and to the
issue's targets known below.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.common import RESULTS, meets

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SVG = ROOT / "docs" / "assets" / "benchmarks.svg"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

#: Order and titles of the known benchmarks.
TITLES = {
    "real": "Example app on PostgreSQL + Redis over HTTP",
    "workers": "inventory-app serve --workers 2 against --workers 1",
    "overhead": "Per-request overhead (in process)",
    "peers": "Peers: one authenticated GET",
    "scoping": "Tenant scoping per query",
    "http_load": "HTTP load, one uvicorn worker",
    "rotation": "Refresh-token rotation",
    "audit": "Audit log batching",
    "login_storm": "GET /auth/me during a login storm",
}

#: Targets from the benchmarks issue, for results that do not carry a headline:
#: (keys to look for, op, target, unit).
TARGETS: dict[str, tuple[tuple[str, ...], str, float, str]] = {
    "overhead": (("full_stack_ratio",), "<=", 1.5, "×"),
    "http_load": (("ratio", "rps_ratio", "requests_ratio"), ">=", 0.7, "×"),
    "rotation": (("ratio",), ">=", 0.8, "×"),
    "login_storm": (("storm_p99_ms", "p99_ms"), "<", 20.0, "ms"),
    "audit": (("ratio", "speedup", "batching_ratio"), ">=", 20.0, "×"),
    "scoping": (("ratio", "sqlite_ratio"), "<=", 1.3, "×"),
}

UNITS = {"_us": "µs", "_ms": "ms", "_per_s": "/s", "_rps": "/s", "_seconds": "s"}
#: Which figures to chart when a result mixes units and declares no ``series``.
PREFERRED_UNIT = {"http_load": "/s"}
SYMBOLS = {"<=": "≤", ">=": "≥", "<": "<", ">": ">"}


def load() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Every result file by benchmark name, and the last run's summary."""
    results: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.name.startswith("_"):
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        results[str(data.get("benchmark") or path.stem)] = data
    run_file = RESULTS / "_run.json"
    run = json.loads(run_file.read_text()) if run_file.exists() else {}
    return results, run


def _numbers(data: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Numeric values, one level of nesting flattened: ``("bare rps", 1416.7)``."""
    found: list[tuple[str, float]] = []
    for key, value in data.items():
        if isinstance(value, dict) and not prefix and key not in ("headline",):
            found += _numbers(value, f"{key} ")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((f"{prefix}{key}", value))
    return found


def series_of(data: dict[str, Any], name: str = "") -> list[dict[str, Any]]:
    """The figures measured side by side (declared, or guessed from key suffixes)."""
    declared = data.get("series")
    if isinstance(declared, list) and declared:
        return [s for s in declared if isinstance(s.get("value"), int | float)]
    guessed = []
    for key, value in _numbers(data):
        head, _, last = key.rpartition(" ")
        for suffix, unit in UNITS.items():
            if last == suffix.lstrip("_") or last.endswith(suffix):
                label = f"{head} {last[: -len(suffix)]}".replace("_", " ").strip()
                guessed.append({"label": label or last, "value": value, "unit": unit})
                break
    if not guessed:
        return []
    counts = Counter(s["unit"] for s in guessed)
    unit = PREFERRED_UNIT.get(name) if PREFERRED_UNIT.get(name) in counts else counts.most_common(1)[0][0]
    return [s for s in guessed if s["unit"] == unit]


def headline_of(name: str, data: dict[str, Any]) -> dict[str, Any] | None:
    """The ratio compared with the target (declared, or found by the known keys)."""
    declared = data.get("headline")
    if isinstance(declared, dict) and isinstance(declared.get("ratio"), int | float):
        return declared
    known = TARGETS.get(name)
    keys = known[0] if known else ()
    candidates = [*keys, *(k for k in data if "ratio" in k or "speedup" in k)]
    for key in candidates:
        value = data.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            head: dict[str, Any] = {"label": key.replace("_", " "), "ratio": value, "unit": "×"}
            if known and key in keys:
                head.update(op=known[1], target=known[2], unit=known[3])
            return head
    return None


def number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def with_unit(value: float, unit: str) -> str:
    if unit == "×":
        return f"{number(value)}×"
    return f"{number(value)} {unit}" if not unit.startswith("/") else f"{number(value)}{unit}"


def verdict(head: dict[str, Any] | None) -> tuple[str, str]:
    """(target text, outcome) for a headline."""
    if head is None:
        return "—", "—"
    op, target = head.get("op"), head.get("target")
    if not op or not isinstance(target, int | float):
        return "none", "—"
    text = f"{SYMBOLS.get(op, op)} {with_unit(target, head.get('unit', '×'))}"
    return text, ("met" if meets(op, head["ratio"], target) else "**missed**")


def ordered(results: dict[str, dict[str, Any]], run: dict[str, Any]) -> list[str]:
    names = [n for n in TITLES if n in results or n in run.get("benchmarks", {})]
    return names + sorted(n for n in results if n not in TITLES)


def _side(side: dict[str, Any]) -> str:
    return f"{number(side['rps'])}/s · p50 {number(side['p50_ms'])} ms · p99 {number(side['p99_ms'])} ms"


def _rounds(comparison: dict[str, Any]) -> str:
    ratios = comparison.get("round_ratios") or []
    return f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""


def real_rows(data: dict[str, Any] | None, status: str) -> list[str]:
    """The real deployment's table: one row per target."""
    rows = [
        "| Measured | tenantkit | Compared with | Figure | Target | Outcome |",
        "|---|---|---|---|---|---|",
    ]
    if data is None:
        reason = {"missing": "to be regenerated"}.get(status, f"{status} in the latest run")
        return [*rows, f"| *{reason}* | | | | | |"]
    heads = data.get("headlines") or []
    for comparison, head in zip(data.get("comparisons", []), heads, strict=False):
        target, outcome = verdict(head)
        rows.append(
            f"| {comparison['label']} | {_side(comparison['tenantkit'])} | "
            f"{comparison['peer_label']}: {_side(comparison['peer'])} | "
            f"{with_unit(head['ratio'], '×')}{_rounds(comparison)} | {target} | {outcome} |"
        )
    storm, rss = data.get("login_storm"), data.get("rss")
    if storm and len(heads) > 3:
        target, outcome = verdict(heads[3])
        rows.append(
            f"| GET /auth/me from one connection while {storm['login_clients']} clients log in "
            f"(bcrypt cost {storm['bcrypt_rounds']}, {number(storm['logins']['rps'])} logins/s) | "
            f"p50 {number(storm['storm']['p50_ms'])} ms · p99 {number(storm['storm']['p99_ms'])} ms | "
            f"idle: p50 {number(storm['idle']['p50_ms'])} ms · p99 {number(storm['idle']['p99_ms'])} ms | "
            f"p99 {number(heads[3]['ratio'])} ms | {target} | {outcome} |"
        )
    if rss and len(heads) > 4:
        target, outcome = verdict(heads[4])
        rows.append(
            f"| App server RSS over {rss['requests']:,} authenticated requests after "
            f"{rss['warmup_requests']:,} warm-up | {number(rss['rss_before_mb'])} → "
            f"{number(rss['rss_after_mb'])} MB (peak {number(rss['rss_peak_mb'])}) | "
            f"{number(rss['load']['rps'])}/s | {rss['rss_growth_mb']:+.1f} MB | {target} | {outcome} |"
        )
    return rows


#: Benchmarks run on PostgreSQL + Redis besides ``real``: shown with it, not with the embedded ones.
DEPLOYED = frozenset({"workers"})


def markdown(results: dict[str, dict[str, Any]], run: dict[str, Any]) -> str:
    """The generated block: context line, the two tables, chart."""
    outcomes = run.get("benchmarks", {})
    header = ["| Benchmark | Measured side by side | Headline | Target | Outcome |", "|---|---|---|---|---|"]
    rows, deployed = list(header), list(header)
    for name in ordered(results, run):
        if name == "real":
            continue
        table = deployed if name in DEPLOYED else rows
        title = TITLES.get(name, name)
        data = results.get(name)
        if data is None:  # a run deletes a result before re-measuring it
            status = outcomes.get(name, {}).get("status", "missing")
            reason = {"missing": "to be regenerated"}.get(status, f"{status} in the latest run")
            table.append(f"| {title} | *{reason}* | | | |")
            continue
        figures = " · ".join(
            f"{s['label']} {with_unit(s['value'], s['unit'])}" for s in series_of(data, name)
        )
        head = headline_of(name, data)
        target, outcome = verdict(head)
        shown = f"{head['label']}: {with_unit(head['ratio'], head.get('unit', '×'))}" if head else "—"
        table.append(f"| {title} | {figures or '—'} | {shown} | {target} | {outcome} |")

    sample = next(iter(results.values()), {})
    context = [
        f"Latest run: {run.get('finished_at', sample.get('taken_at', 'unknown'))}",
        f"Python {sample.get('python', '?')}",
        f"{sample.get('machine', '?')}, {sample.get('cpus', '?')} CPUs",
        "quick run (short, rough figures)" if run.get("quick", sample.get("quick")) else "full run",
    ]
    lines = ["", f"*{' · '.join(context)}.*", ""]
    if run.get("note"):
        lines += [f"!!! note\n    {run['note']}", ""]
    real = results.get("real")
    lines += ["### PostgreSQL + Redis: the example app over HTTP", ""]
    if real:
        server = real.get("server", {})
        lines += [
            f"*One uvicorn worker per server (uvloop: {'yes' if server.get('uvloop') else 'no'}, "
            f"httptools: {'yes' if server.get('httptools') else 'no'}), wrk with "
            f"{real.get('connections')} connections ({real.get('rotation_chains')} rotation chains), "
            f"{real.get('rounds')} interleaved round(s) of {real.get('round_seconds'):g} s, medians; "
            "each ratio is the median of the rounds' ratios.*",
            "",
        ]
    lines += real_rows(real, outcomes.get("real", {}).get("status", "missing"))
    if real and real.get("targets_line"):
        lines += ["", f"`{real['targets_line']}`"]
    if len(deployed) > len(header):
        lines += ["", "Several server processes, as deployed (PostgreSQL + Redis):", "", *deployed]
    lines += ["", "### Embedded default: SQLite and in-memory stores", "", *rows]
    lines += ["", "![Benchmark figures, one panel per benchmark](assets/benchmarks.svg)", ""]
    return "\n".join(lines)


def panels(
    results: dict[str, dict[str, Any]], run: dict[str, Any]
) -> list[tuple[str, list[dict[str, Any]], str]]:
    """``(title, series, subtitle)`` per chart panel: the real deployment's first."""
    found: list[tuple[str, list[dict[str, Any]], str]] = []
    for name in ordered(results, run):
        data = results.get(name)
        if data is None:
            continue
        if name == "real":
            found += real_panels(data)
            continue
        series = series_of(data, name)
        if not series:
            continue
        head = headline_of(name, data)
        found.append((TITLES.get(name, name), series, _subtitle(head)))
    return found


def _subtitle(head: dict[str, Any] | None) -> str:
    if not head:
        return ""
    target, outcome = verdict(head)
    text = f"{head['label']}: {with_unit(head['ratio'], head.get('unit', '×'))}"
    if target not in ("—", "none"):
        text += f" (target {target}: {outcome.strip('*')})"
    return text


def real_panels(data: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], str]]:
    heads = data.get("headlines") or []
    found = []
    for comparison, head in zip(data.get("comparisons", []), heads, strict=False):
        series = [
            {
                "label": f"tenantkit {comparison['label']}",
                "value": comparison["tenantkit"]["rps"],
                "unit": "/s",
            },
            {"label": comparison["peer_label"], "value": comparison["peer"]["rps"], "unit": "/s"},
        ]
        found.append((f"PostgreSQL + Redis: {comparison['label']}", series, _subtitle(head)))
    storm = data.get("login_storm")
    if storm and len(heads) > 3:
        series = [
            {"label": f"tenantkit {label}", "value": storm[phase][key], "unit": "ms"}
            for phase, key, label in (
                ("idle", "p50_ms", "idle p50"),
                ("idle", "p99_ms", "idle p99"),
                ("storm", "p50_ms", "login storm p50"),
                ("storm", "p99_ms", "login storm p99"),
            )
        ]
        found.append(("PostgreSQL + Redis: GET /auth/me during a login storm", series, _subtitle(heads[3])))
    rss = data.get("rss")
    if rss and len(heads) > 4:
        series = [
            {"label": "tenantkit RSS after warm-up", "value": rss["rss_before_mb"], "unit": "MB"},
            {"label": "tenantkit RSS peak", "value": rss["rss_peak_mb"], "unit": "MB"},
            {"label": "tenantkit RSS at the end", "value": rss["rss_after_mb"], "unit": "MB"},
        ]
        found.append(("PostgreSQL + Redis: app server memory over the long run", series, _subtitle(heads[4])))
    return found


def svg(results: dict[str, dict[str, Any]], run: dict[str, Any]) -> str:
    """One panel per benchmark: horizontal bars on the panel's own scale."""
    width, label_w, value_w, bar_h, gap, head_h, pad = 820, 290, 110, 18, 5, 40, 14
    bar_w = width - label_w - value_w - 2 * pad
    parts: list[str] = []
    y = pad
    for title, series, subtitle in panels(results, run):
        parts.append(
            f'<text x="{pad}" y="{y + 16}" class="title">{escape(title)}</text>'
            f'<text x="{pad}" y="{y + 32}" class="sub">{escape(subtitle)}</text>'
        )
        y += head_h
        top = max(s["value"] for s in series) or 1.0
        for s in series:
            length = max(1.0, s["value"] / top * bar_w) if s["value"] > 0 else 0.0
            css = "tk" if str(s["label"]).lower().startswith("tenantkit") else "peer"
            parts.append(
                f'<text x="{pad + label_w - 8}" y="{y + 13}" class="label" text-anchor="end">'
                f"{escape(str(s['label']))}</text>"
                f'<rect x="{pad + label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" class="{css}"/>'
                f'<text x="{pad + label_w + length + 6:.1f}" y="{y + 13}" class="value">'
                f"{escape(with_unit(s['value'], s['unit']))}</text>"
            )
            y += bar_h + gap
        y += pad
    if not parts:
        parts.append(
            f'<text x="{pad}" y="{pad + 16}" class="sub">No results yet: run python -m bench.</text>'
        )
        y += 40
    style = (
        "<style>text{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;fill:#222}"
        ".title{font-size:14px;font-weight:600}.sub{font-size:11px;fill:#555}.label,.value{font-size:11px}"
        ".tk{fill:#3b6fd4}.peer{fill:#a8b0bd}</style>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y}" viewBox="0 0 {width} {y}" '
        'role="img" aria-label="tenantkit benchmark figures">'
        f'{style}<rect width="100%" height="100%" fill="#fff"/>' + "".join(parts) + "</svg>\n"
    )


def update_doc(block: str, doc: Path = DOC) -> None:
    """Replace the text between the markers in ``doc`` (appending them if absent)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = f"{before}{START}\n{block}\n{END}{after}"
    else:
        text = f"{text.rstrip()}\n\n{START}\n{block}\n{END}\n"
    doc.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print the table instead of writing the docs")
    parser.add_argument(
        "--placeholder", action="store_true", help="every figure 'to be regenerated' (ignores bench/results/)"
    )
    args = parser.parse_args(argv)
    results, run = load()
    if args.placeholder:
        results, run = {}, {"finished_at": "to be regenerated", "benchmarks": {n: {} for n in TITLES}}
    block = markdown(results, run)
    if args.print:
        print(block)
        return 0
    SVG.parent.mkdir(parents=True, exist_ok=True)
    SVG.write_text(svg(results, run))
    update_doc(block)
    print(
        f"report: {DOC.relative_to(ROOT)} and {SVG.relative_to(ROOT)} updated from {len(results)} result(s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
