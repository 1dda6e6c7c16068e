"""What the grader writes: ``gradebook.csv``, the feedback files, Gradescope's ``results.json``.

Every file is written with :func:`atomic_write` (a temporary file in the same folder, then
``os.replace``), by the grader's process only, and every text that came from a student's process
goes through :func:`scrub` first, the last line of defence for the instructor's secret.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from .spec import Assignment

__all__ = [
    "atomic_write",
    "feedback_markdown",
    "gradescope_json",
    "gradebook_csv",
    "write_outputs",
    "scrub",
    "STATUS_ORDER",
    "STATUS_TEXT",
]

#: Status codes, most severe first (``gradebook.csv`` lists those that apply in this order).
STATUS_ORDER = (
    "invalid_notebook",
    "crashed",
    "timeout",
    "memory_limit",
    "sys_exit",
    "syntax_error",
    "exception",
    "missing_function",
    "not_implemented",
    "bad_output",
    "reference_used",
)
STATUS_TEXT = {
    "invalid_notebook": "the file is not a readable Jupyter notebook",
    "crashed": "the process running the notebook died (os._exit, a segfault, or it was killed)",
    "timeout": "something ran longer than the time limit",
    "memory_limit": "something used more memory than allowed",
    "sys_exit": "sys.exit() was called",
    "syntax_error": "a cell has a syntax error",
    "exception": "a cell or a graded function raised an exception",
    "missing_function": "a graded function is not defined",
    "not_implemented": "a graded function still raises NotImplementedError",
    "bad_output": (
        "a graded function returned something that is not a tensor/number, on the wrong device, or too large"
    ),
    "reference_used": "a graded function calls the reference implementation of what it should implement",
}

SCRUBBED = "[secret removed]"


def scrub(value: Any, secret: str) -> Any:
    """``value`` (strings, lists, dicts of them) with every occurrence of ``secret`` replaced.

    The secret never reaches a student's process, so this should never find anything; it is there in
    case something else (a log of the grader's own, a future change) would let it through.
    """
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, SCRUBBED) if secret in value else value
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    if isinstance(value, tuple):
        return tuple(scrub(v, secret) for v in value)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    return value


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _pts(x: float) -> str:
    return f"{x:g}"


def feedback_markdown(record: dict, assignment: Assignment) -> str:
    """The student's feedback file."""
    lines = [
        f"# {assignment.title}: feedback for `{record['submission']}`",
        "",
        f"**Score: {_pts(record['total'])} / {_pts(record['max_total'])}**  ",
        f"Status: `{record['status']}`",
        "",
    ]
    if record["status"] != "ok":
        for code in record["status"].split(";"):
            lines.append(f"- `{code}`: {STATUS_TEXT.get(code, code)}")
        lines.append("")
    for q in record["questions"]:
        lines += [
            f"## {q['id']}: {q['title']} (`{q['function']}`): {_pts(q['score'])} / {_pts(q['max_score'])}",
            "",
        ]
        if q["message"]:
            lines += [f"**{q['message']}**", ""]
        for p in q["parts"]:
            mark = "\u2713" if p["passed"] and not q["message"] else "\u2717"
            kind = " (hidden test)" if p["hidden"] else ""
            line = f"- {mark} {p['name']}{kind}: {_pts(p['score'])} / {_pts(p['points'])}"
            if not p["passed"] and p["message"]:
                line += f" \u2014 {p['message']}"
            lines.append(line)
            lines += [f"  - {h}" for h in p.get("hints", [])]  # staged hints of a failed part (issue 16)
        if q.get("note"):  # an earlier answer replaced by its reference for this question (issue 16)
            lines.append(f"- note: {q['note']}")
        lines.append("")
    if record.get("cell_errors") or record.get("events"):
        lines += ["## What happened when your notebook ran", ""]
        for e in record.get("events", []):
            lines.append(f"- {e}")
        for e in record.get("cell_errors", []):
            lines.append(f"- cell {e['cell']}: `{e['kind']}`: {e['message']}")
        lines.append("")
    log = record.get("log", "")
    if log.strip():
        fence = "~~~~"
        while fence in log:
            fence += "~"
        lines += ["## Output of your notebook (shortened)", "", fence, log.rstrip(), fence, ""]
    lines.append(
        "Tolerances: values are compared in float32 on the CPU with atol = rtol = 1e-5 unless a question "
        "says otherwise."
    )
    return "\n".join(lines) + "\n"


def gradescope_json(record: dict, hidden_visibility: str) -> str:
    """Gradescope's ``results.json`` for one submission."""
    tests = []
    for qi, q in enumerate(record["questions"], start=1):
        for pi, p in enumerate(q["parts"], start=1):
            output = q["message"] or (p["message"] if not p["passed"] else (p["description"] or "passed"))
            output = "\n".join([output, *p.get("hints", [])])  # the same staged hints as the feedback
            if q.get("note") and pi == 1:
                output += f"\nnote: {q['note']}"
            tests.append(
                {
                    "name": f"{q['id']} {q['title']}: {p['name']}",
                    "number": f"{qi}.{pi}",
                    "score": p["score"],
                    "max_score": p["points"],
                    "status": "passed" if p["score"] == p["points"] else "failed",
                    "output": output,
                    "visibility": hidden_visibility if p["hidden"] else "visible",
                }
            )
    summary = [f"Status: {record['status']}. Score {_pts(record['total'])} / {_pts(record['max_total'])}."]
    summary += [f"- {e}" for e in record.get("events", [])]
    summary += [f"- cell {e['cell']}: {e['kind']}: {e['message']}" for e in record.get("cell_errors", [])]
    results = {
        "score": record["total"],
        "execution_time": record.get("seconds", 0.0),
        "output": "\n".join(summary),
        "stdout_visibility": "hidden",
        "tests": tests,
        "extra_data": {"status": record["status"], "submission": record["submission"]},
    }
    return json.dumps(results, indent=2) + "\n"


def gradebook_csv(records: Sequence[dict], assignment: Assignment) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", *[q.id for q in assignment.questions], "total", "status"])
    for r in sorted(records, key=lambda r: r["submission"]):
        scores = {q["id"]: q["score"] for q in r["questions"]}
        writer.writerow(
            [
                r["submission"],
                *[_pts(scores.get(q.id, 0.0)) for q in assignment.questions],
                _pts(r["total"]),
                r["status"],
            ]
        )
    return out.getvalue()


def write_outputs(out: Path, record: dict, assignment: Assignment, hidden_visibility: str) -> None:
    """Write one submission's feedback, ``results.json`` and signed record."""
    name = record["submission"]
    atomic_write(out / "feedback" / f"{name}.md", feedback_markdown(record, assignment))
    atomic_write(out / "gradescope" / name / "results.json", gradescope_json(record, hidden_visibility))
    atomic_write(out / "records" / f"{name}.json", json.dumps(record, indent=1, default=str) + "\n")
