"""The repository stands on its own: no file refers to a path outside it."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# built from pieces so that this file does not match itself
OUTSIDE = [
    re.compile(r"\.\./" + "shared"),  # the design folder beside the repository
    re.compile(r"\b" + "MODEL" + r"\.md\b"),  # the model spec lives in docs/model.md
    re.compile(r"(?<![\w.])/" + "work/"),  # the developers' machine
]


def tracked_text_files():
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in names:
        path = ROOT / name
        if path.is_file() and path.suffix not in (".png", ".pdf", ".nc"):
            try:
                yield name, path.read_text()
            except UnicodeDecodeError:
                continue


def test_no_file_refers_to_a_path_outside_the_repository():
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in tracked_text_files()
        for pattern in OUTSIDE
        for m in pattern.finditer(text)
    ]
    assert not found, "references outside the repository:\n" + "\n".join(found)


def test_relative_links_of_the_docs_resolve():
    broken = []
    for doc in [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "config" / "README.md",
    ]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_code_shape_functions_classes_and_private_names():
    """docs/contributing.md: no function over 120 lines, no class over 250, and no private
    name (`_x`) imported from another tsmeta module (make it public or keep it home)."""
    import ast

    found = []
    for path in sorted((ROOT / "src" / "tsmeta").rglob("*.py")):
        rel = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            size = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and size > 120:
                found.append(f"{rel}: function {node.name} has {size} lines")
            if isinstance(node, ast.ClassDef) and size > 250:
                found.append(f"{rel}: class {node.name} has {size} lines")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tsmeta"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                private = [n for n in private if not n.startswith("__")]
                found += [f"{rel}: imports the private {node.module}.{n}" for n in private]
    assert not found, "\n".join(found)
