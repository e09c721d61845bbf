"""mkdocs hook: the committed report's figures (reports/readme/*.png) as pages' files under figures/.

docs/results.md shows the figures of the committed report without a copy of them in docs/: mkdocs only
serves files of its docs folder, so this hook adds each figure to the site as figures/<name>.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = Path(__file__).resolve().parent.parent / "reports" / "readme"


def on_files(files, config):
    for path in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"figures/{path.name}", abs_src_path=str(path)))
    return files
