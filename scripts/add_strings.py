"""Add UI strings to both locale catalogs safely, even when several people add at once.

Usage: python scripts/add_strings.py FILE.json   where FILE holds {"key": ["中文", "English"]}.
Keys already present are overwritten. The catalogs stay sorted; a lock file serialises writers.
"""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path

LOCALES = Path(__file__).resolve().parent.parent / "cims" / "locales"


def main(path: str) -> None:
    """Merge the strings in ``path`` into zh.json and en.json."""
    new: dict[str, list[str]] = json.loads(Path(path).read_text("utf-8"))
    bad = [k for k, v in new.items() if not (isinstance(v, list) and len(v) == 2 and all(v))]
    if bad:
        sys.exit(f"each value must be [zh, en], both non-empty: {bad}")
    with open(LOCALES / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for index, language in enumerate(("zh", "en")):
            file = LOCALES / f"{language}.json"
            catalog = json.loads(file.read_text("utf-8"))
            catalog.update({key: pair[index] for key, pair in new.items()})
            text = json.dumps(dict(sorted(catalog.items())), ensure_ascii=False, indent=1)
            file.write_text(text, "utf-8")
    print(f"added {len(new)} strings")


if __name__ == "__main__":
    main(sys.argv[1])
