"""``python -m bench.extractor``: the tool-call extractor's CPU cost per event for large calls.

Coding agents write whole files through ``write_to_file``-style calls. This case feeds the
sans-IO extractor one call of each size as 20-character text events (as Poe sends them) and
reports the CPU time per event; a linear extractor costs the same per event whatever the size.
Runs in one process, no network: ``--sizes 10,800`` (KB), ``--event`` (characters) and
``--form json|parameter``.
"""

from __future__ import annotations

import argparse
import json
import time

from poe2openai.conversation import ToolPlan, ToolSpec
from poe2openai.pipeline.deltas import End, TextDelta, ToolCallDelta
from poe2openai.tools.xml_extract import XmlToolExtractor

WRITE = ToolSpec(
    "write_to_file",
    "Write a file",
    {"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}},
)


def large_call(size: int, form: str = "json") -> str:
    """A ``write_to_file`` call whose file content is about ``size`` characters of code, with
    JSON arguments (streamed) or as ``<parameter>`` elements (sent whole at the end)."""
    line = "    total = total + compute(value, other) * 2  # a line of code\n"
    content = (line * (size // len(line) + 1))[:size]
    if form == "parameter":
        return (
            '<tool_call>\n<invoke name="write_to_file">\n<parameter name="path">src/big.py</parameter>\n'
            f'<parameter name="content">{content}</parameter>\n</invoke>\n</tool_call>'
        )
    args = json.dumps({"path": "src/big.py", "content": content})
    call = f"<tool_call>\n<name>write_to_file</name>\n<arguments>{args}</arguments>\n</tool_call>"
    return "I will write the file.\n\n" + call


def measure(size: int, event: int, form: str = "json") -> dict[str, float]:
    """Feed one call of ``size`` characters in ``event``-character events; CPU time per event."""
    answer = large_call(size, form)
    events = [answer[i : i + event] for i in range(0, len(answer), event)]
    x = XmlToolExtractor(ToolPlan((WRITE,), "auto", None, True, {WRITE.name: WRITE}))
    fragments = 0
    start = time.process_time()
    for e in events:
        out = x.feed([TextDelta(e)])
        fragments += sum(1 for d in out if isinstance(d, ToolCallDelta))
    out = x.feed([End()])
    cpu = time.process_time() - start
    fragments += sum(1 for d in out if isinstance(d, ToolCallDelta))
    return {
        "kb": size / 1000,
        "events": len(events),
        "cpu_s": cpu,
        "us_per_event": cpu / len(events) * 1e6,
        "call_deltas": fragments,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.extractor", description=__doc__)
    parser.add_argument("--sizes", default="10,200,400,800", help="call sizes in KB (default 10,200,400,800)")
    parser.add_argument("--event", type=int, default=20, help="characters per text event (default 20)")
    parser.add_argument("--form", choices=("json", "parameter"), default="json", help="how the call is written")
    args = parser.parse_args(argv)
    rows = [measure(int(float(s) * 1000), args.event, args.form) for s in args.sizes.split(",")]
    for r in rows:
        print(
            f"{r['kb']:>7.0f} KB  {r['events']:>7} events  {r['cpu_s']:7.3f} s CPU  "
            f"{r['us_per_event']:8.2f} µs/event  {r['call_deltas']:>6} call deltas"
        )
    if len(rows) > 1:
        print(f"cost per event, largest vs smallest: {rows[-1]['us_per_event'] / rows[0]['us_per_event']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
