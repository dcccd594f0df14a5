"""The self-contained `report.html`: its structure (rows, embedded images, configs, help) and,
marked slow, the page rendered in headless Chromium (rows, decoded images, no console
messages), with the screenshot kept under `results/` as a CI artefact."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hbm_experiments.cli import main
from hbm_experiments.evaluation import compare_returns
from hbm_experiments.html_report import METRIC_HELP, write_html_report
from hbm_experiments.report import comparison_rows, make_report
from hbm_experiments.status import ExperimentRecord

REPO = Path(__file__).resolve().parents[3]
SCREENSHOT = REPO / "results" / "html_report_screenshot.png"
TASKS = {"ga_feedforward": "GAExperiment", "sgd_feedforward": "SGDExperiment"}


def _record(tmp: Path, method: str, seed: int, cl: bool) -> ExperimentRecord:
    human = np.random.default_rng(cl).normal(200, 20, 8)  # one person, one split per CL setting
    rng = np.random.default_rng(seed + 10 * cl + (method == "sgd_feedforward") * 100)
    model = human + rng.normal(-15 if method.startswith("ga") else 5, 10, 8)
    config = {
        "method": method,
        "seed": seed,
        "dataset": "cartpole",
        "subject": "sim01",
        "data": {"use_cl_info": cl},
        "model": {"hidden_size": 8},
    }
    history = [
        {"generation": g, "elapsed": 0.5 * g, "test_ce": 1.0 - 0.05 * g, "test_f1": 0.1 * g}
        for g in range(1, 6)
    ]
    result = {
        "simulated": True,
        "history": history,
        "metrics": {"test_ce": 0.6 + 0.01 * seed, "test_f1": 0.7, "test_accuracy": 0.8},
        "behaviour": compare_returns(model, human),
        "train_time": 3.0,
        "num_params": 42,
    }
    folder = tmp / "cache" / f"{method}-{seed}-{cl}"
    folder.mkdir(parents=True)
    return ExperimentRecord(
        folder=folder,
        task=TASKS[method],
        version="1",
        config=config,
        status="completed",
        result=result,
    )


def _records(tmp: Path) -> list[ExperimentRecord]:
    return [_record(tmp, m, s, cl) for m in TASKS for cl in (False, True) for s in (0, 1)]


class Page(HTMLParser):
    """What the tests look at: body rows, images, details, header titles, links out."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.row_classes: list[str] = []
        self.images: list[str] = []
        self.details: list[str] = []
        self.titles: dict[str, str] = {}
        self.external: list[str] = []
        self.body: dict[str, str] = {}
        self._in_body = self._cell = False
        self._th: str | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for key in ("src", "href"):
            if re.match(r"(https?:)?//", a.get(key, "")):
                self.external.append(a[key])
        if tag == "body":
            self.body = a
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
            self.row_classes.append(a.get("class", ""))
        elif tag == "td" and self._in_body:
            self._cell, self._text = True, []
        elif tag == "th":
            self._th, self._text = a.get("title", ""), []
        elif tag == "img":
            self.images.append(a.get("src", ""))
        elif tag == "details":
            self.details.append(a.get("id", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell:
            self.rows[-1].append("".join(self._text).strip())
            self._cell = False
        elif tag == "th" and self._th is not None:
            self.titles["".join(self._text).strip()] = self._th
            self._th = None

    def handle_data(self, data: str) -> None:
        if self._cell or self._th is not None:
            self._text.append(data)


def test_report_html_has_the_table_the_plots_and_the_configs(tmp_path: Path) -> None:
    records = _records(tmp_path)
    _, files = make_report(records, tmp_path / "out", html=True)
    page_path = tmp_path / "out" / "report.html"
    assert page_path in files and (tmp_path / "out" / "report.md") in files
    text = page_path.read_text()
    page = Page(text)
    rows = comparison_rows(records)  # the very rows of the markdown table, not recomputed
    assert len(page.rows) == len(rows) == 4
    for got, want in zip(page.rows, rows, strict=True):
        cells = [str(v) for k, v in want.items() if not k.startswith("_")]
        assert got[: len(cells)] == cells
        assert got[-1] == "2 runs"  # the link to the configs of the two seeds
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(page.images) == len(pngs) == 4
    for src, png in zip(page.images, pngs, strict=True):
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == png.read_bytes()
    assert page.external == [] and "<link" not in text  # nothing fetched: no CDN, no server
    assert page.details == [f"configs-{i}" for i in range(4)]
    for rec in records:  # every run's folder and config (YAML) behind its row
        assert str(rec.folder) in text
    assert text.count("seed: 0") == 4 and text.count("seed: 1") == 4
    assert page.titles["test CE"] == METRIC_HELP["test CE"]
    assert "How to read this" in text and "<dt>U p-value</dt>" in text
    assert "scripted players, not people" in text  # the simulated-subjects note
    assert "sortable" in text and 'addEventListener("click"' in text


def test_reference_rows_unknown_columns_and_escaping(tmp_path: Path) -> None:
    rows = [
        {"dataset": "cartpole", "method": "ga_feedforward", "CL": "no", "test CE": "0.600"},
        {"dataset": "cartpole", "method": "person", "CL": "no", "test CE": "0.400"},
        {"dataset": "cartpole", "method": "random", "CL": "no", "test CE": "0.693"},
        {"dataset": "<b>x</b>", "method": "m", "CL": "no", "test CE": None, "new col": 3},
    ]
    path = write_html_report(rows, [tmp_path / "notes.txt"], tmp_path / "o", title="T & co")
    text = path.read_text()
    page = Page(text)
    assert page.row_classes == ["", "reference", "reference", ""]
    assert "Rows in italics are references" in text
    assert page.rows[3] == ["<b>x</b>", "m", "no", "-", "3"]  # escaped, shown as text
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert page.titles["new col"] == "click to sort" and page.images == []
    assert "<title>T &amp; co</title>" in text and page.details == []  # no records: no configs
    empty = Page(write_html_report([], [], tmp_path / "e").read_text())
    assert (
        empty.rows == [] and "Rows in italics" not in (tmp_path / "e" / "report.html").read_text()
    )


def test_hbm_report_html_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    assert main(["report", "--html", "--out", str(out), "-q"]) == 0
    assert f"wrote {out / 'report.html'}" in capsys.readouterr().out
    assert "no completed experiments" in (out / "report.html").read_text()
    assert main(["report", "--out", str(tmp_path / "md"), "-q"]) == 0
    assert not (tmp_path / "md" / "report.html").exists()  # only when asked


# ----------------------------------------------------------------------------------------------
# In a real browser


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return exe


def _render(exe: str, page: Path, profile: Path, *flags: str) -> tuple[str, list[str]]:
    """Run headless Chromium on `page`; (stdout, the page's console messages)."""
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *flags,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return proc.stdout, console


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    exe = _chromium()
    records = _records(tmp_path)
    make_report(records, tmp_path / "out", html=True)
    page_path = tmp_path / "out" / "report.html"
    dom, console = _render(exe, page_path, tmp_path / "profile", "--dump-dom")
    assert console == []  # no errors (and the page logs nothing else)
    rendered = Page(dom)
    assert len(rendered.rows) == len(comparison_rows(records)) == 4
    # the page's load handler counted the images that actually decoded
    assert rendered.body.get("data-images") == "4"
    assert rendered.body.get("data-images-loaded") == "4"
    # clicking a header sorts by its numbers ("+2.6 [..]" > "-10.0 [..]"), again reverses
    header = list(rendered.titles).index("return Δ")
    values = sorted(float(r[header].split()[0]) for r in rendered.rows)
    for clicks, want in ((1, values), (2, values[::-1])):
        clicked = tmp_path / f"clicked{clicks}.html"
        click = f'document.querySelectorAll("th")[{header}].click();' * clicks
        clicked.write_text(
            page_path.read_text().replace(
                "</body>", f'<script>addEventListener("load", () => {{ {click} }});</script></body>'
            )
        )
        dom, console = _render(exe, clicked, tmp_path / "profile", "--dump-dom")
        assert console == []
        assert [float(r[header].split()[0]) for r in Page(dom).rows] == want
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    _, console = _render(
        exe,
        page_path,
        tmp_path / "profile",
        f"--screenshot={SCREENSHOT}",
        "--window-size=1280,4000",
    )
    assert console == []
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert SCREENSHOT.stat().st_size > 20_000  # a drawn page, not a blank one


@pytest.mark.slow
def test_chromium_check_catches_broken_images_and_script_errors(tmp_path: Path) -> None:
    """The browser check can fail: a corrupt image and a script error are both reported."""
    exe = _chromium()
    path = write_html_report([{"method": "m", "test CE": "0.5"}], [], tmp_path)
    text = path.read_text().replace(
        "</h1>", '</h1><img alt="corrupt" src="data:image/png;base64,AAAA">'
    )
    text = text.replace("</body>", "<script>notDefined();</script></body>")
    path.write_text(text)
    dom, console = _render(exe, path, tmp_path / "profile", "--dump-dom")
    joined = "\n".join(console)
    assert "Uncaught ReferenceError" in joined and "image did not load: corrupt" in joined
    assert Page(dom).body.get("data-images-loaded") == "0"
