"""The docs: the README a newcomer reads in five minutes, the reference pages built strictly."""

import re
import subprocess
import sys

from tests.helpers import ROOT


def test_the_docs_build_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing anchor or an API name that no longer exists fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "depth_lightning.evaluation.evaluator.Evaluator" in api and "soft-weighted-sum" in api


def test_a_broken_link_fails_the_strict_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\n[gone](missing.md)\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: x\nvalidation:\n  links:\n    not_found: warn\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "missing.md" in proc.stderr


def test_the_readme_is_short_and_every_link_it_gives_exists():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"
