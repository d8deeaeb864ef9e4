"""Every number the README and docs/ quote about the shipped models is read from the model's
committed measurement file (``saebench/models/{model}/training.json``), so a retrained model
(a new ``training.json``) fails this test until the text is updated.

A quoted number carries a marker right after it: ``7.28<!-- tiny-ioi metrics/test/mean_ld -->``
(the model, the path of keys in its ``training.json``, and optional flags: ``%`` for a
fraction printed as a percentage, ``/60`` for seconds printed as minutes). The number must
equal the file's value rounded to the decimals it is printed with. In docs/models.md, where
the models are described, any other decimal number outside code blocks must be one of the
few design constants listed below (corpus proportions, a head's label, the causal threshold).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKED = re.compile(r"(-?\d+(?:\.\d+)?)<!-- ([\w-]+) ([^\s]+)((?: (?:%|/\d+))*) -->")
NOT_MEASUREMENTS = {
    "0.0", "0.1", "0.3", "1.0", "1.1", "0.2", "0.5", "3.3", "0.75", "0.4", "0.6", "1.6"
}
"""Decimals in docs/models.md that are no measurement of a shipped model: design constants
(corpus proportions, tiny-gt's span constants, heads' labels, the attention prior's weight,
the causal threshold) and
GPT-2 Small's LD (the paper)."""


def measurement(model: str, path: str) -> float:
    data = json.loads((REPO / "saebench" / "models" / model / "training.json").read_text())
    for key in path.split("/"):
        data = data[key]
    return float(data)


def quoted() -> list[tuple[str, str, str, str, str]]:
    found = []
    for doc in DOCS:
        for match in MARKED.finditer(doc.read_text(encoding="utf-8")):
            found.append((doc.name, *match.groups()))
    return found


def test_the_model_docs_quote_numbers():
    assert len([q for q in quoted() if q[0] == "models.md"]) >= 15


@pytest.mark.parametrize(("doc", "text", "model", "path", "flags"), quoted())
def test_each_quoted_number_matches_its_measurement_file(doc, text, model, path, flags):
    value = measurement(model, path)
    for flag in flags.split():
        if flag == "%":
            value *= 100
        elif flag.startswith("/"):
            value /= float(flag[1:])
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    expected = f"{value:.{decimals}f}"
    assert text == expected, f"{doc}: {text} but {model}'s training.json {path} gives {expected}"


def test_the_model_docs_quote_no_unmarked_measurement():
    text = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands, not measurements
    text = MARKED.sub("", text)
    unmarked = [n for n in re.findall(r"(?<![\w.])\d+\.\d+", text) if n not in NOT_MEASUREMENTS]
    assert not unmarked, f"docs/models.md quotes {unmarked} without a measurement-file marker"
