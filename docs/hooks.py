"""mkdocs hooks: the committed report's figures (reports/readme/*.png) in the site.

docs/results.md links each figure as ../reports/readme/<name>, the path that works where the Markdown is
read in the repository. mkdocs serves only files of its docs folder, so these hooks add each figure to the
site as figures/<name> and point the pages' links there.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

FIGURES = Path(__file__).resolve().parent.parent / "reports" / "readme"
LINK, SERVED = "](../reports/readme/", "](figures/"


def on_files(files, config):
    for path in sorted(FIGURES.glob("*.png")):
        files.append(File.generated(config, f"figures/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    return markdown.replace(LINK, SERVED)
