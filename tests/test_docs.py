"""The documents hold together: every relative link in a Markdown file reaches a file (and a ``#heading`` in it, by
GitHub's slug rules), and no text file carries dated wording, scratch paths or paths of one machine's JDK."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.paths import REPO_ROOT

#: folders that are never part of the project's files when git cannot list them
SKIPPED_DIRS = {".git", ".venv", ".cache", "runs", "build", "target", "__pycache__", "node_modules"}
TEXT_SUFFIXES = {".md", ".py", ".toml", ".sh", ".yml", ".yaml", ".env"}
#: wording that describes a moment instead of what is (matched as whole words, any case)
DATED_WORDS = ("today", "the latest run", "another engineer")
#: paths that belong to one machine or one working session
SCRATCH_PATHS = ("/tmp/work", "/work/main", "kill -STOP")
JDK_PATHS = ("/usr/lib/jvm", "/opt/java", "temurin")
#: the one file that lists where JDKs are searched (``find_java``); documents point at it instead of naming folders
JDK_SEARCH_CODE = {"integration/cluster/oscluster.py"}
THIS_FILE = "tests/test_docs.py"

LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")


def project_files() -> list[str]:
    """Repository-relative paths of the tracked files and the new files git does not ignore (that exist)."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO_ROOT,
                             capture_output=True, check=True).stdout.decode("utf-8")
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*")
                 if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(REPO_ROOT).parts)]
    return sorted(n for n in set(names) if (REPO_ROOT / n).is_file())


def is_text_file(name: str) -> bool:
    """Markdown, Python, TOML, shell, Makefile, YAML and env files (shell scripts also by their ``#!`` line)."""
    path = REPO_ROOT / name
    if path.suffix in TEXT_SUFFIXES or path.name == "Makefile":
        return True
    if path.suffix:
        return False
    with path.open("rb") as f:
        first = f.readline(200)
    return first.startswith(b"#!") and (b"sh" in first.split(b"/")[-1])


def prose_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` of a Markdown text outside fenced code blocks, inline code spans removed."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, re.sub(r"`[^`]*`", "", line)))
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text lower-cased, punctuation dropped, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file (repeated headings get ``-1``, ``-2``, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            slug = github_slug(m.group(2))
            out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return out


def broken_links(name: str) -> list[str]:
    """``file:line: target (why)`` for each relative link of one Markdown file that does not resolve."""
    path = REPO_ROOT / name
    problems = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = unquote(target).partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                problems.append(f"{name}:{number}: {target} (no such file)")
            elif not dest.is_relative_to(REPO_ROOT.resolve()):
                problems.append(f"{name}:{number}: {target} (outside the repository)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{name}:{number}: {target} (no heading '#{anchor}' in {dest.relative_to(REPO_ROOT.resolve())})")
    return problems


def test_github_slug_follows_github():
    assert github_slug("Install sizes (`make install-sizes`)") == "install-sizes-make-install-sizes"
    assert github_slug("Metric conventions (checked against trec_eval and scipy)") == \
        "metric-conventions-checked-against-trec_eval-and-scipy"
    assert github_slug("A/B testing in staging") == "ab-testing-in-staging"
    assert github_slug("Serving under load (`bench/load.py`)") == "serving-under-load-benchloadpy"


def test_broken_links_are_found(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_docs.REPO_ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Top\n\n## Two words\n\n```\n# not a heading\n[x](gone.md)\n```\n"
                                   "[ok](b.md#top) [ok](#two-words) [web](https://example.org/x)\n"
                                   "[bad](b.md#nowhere) [bad](#not-a-heading) [bad](missing.md) `[code](nothing.md)`\n")
    (tmp_path / "b.md").write_text("# Top\n")
    assert [p.split(": ", 1)[1] for p in broken_links("a.md")] == [
        "b.md#nowhere (no heading '#nowhere' in b.md)", "#not-a-heading (no heading '#not-a-heading' in a.md)",
        "missing.md (no such file)"]


def test_markdown_links_resolve():
    markdown = [n for n in project_files() if n.endswith(".md")]
    assert "README.md" in markdown
    problems = [p for name in markdown for p in broken_links(name)]
    assert not problems, "links that do not resolve:\n" + "\n".join(problems)


@pytest.mark.parametrize("what", ["dated wording", "scratch paths", "machine-specific JDK paths"])
def test_text_files_describe_what_is(what):
    words = re.compile(r"\b(" + "|".join(re.escape(w) for w in DATED_WORDS) + r")\b", re.IGNORECASE)
    patterns = {"dated wording": words,
                "scratch paths": re.compile("|".join(re.escape(p) for p in SCRATCH_PATHS)),
                "machine-specific JDK paths": re.compile("|".join(re.escape(p) for p in JDK_PATHS), re.IGNORECASE)}
    pattern = patterns[what]
    hits = []
    for name in project_files():
        if name == THIS_FILE or not is_text_file(name) or (what == "machine-specific JDK paths" and name in JDK_SEARCH_CODE):
            continue
        for number, line in enumerate((REPO_ROOT / name).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not hits, f"{what} in tracked text files:\n" + "\n".join(hits)
