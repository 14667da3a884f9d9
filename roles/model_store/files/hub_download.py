"""Download some files of one pinned hub commit into a folder (llmhost model_store).

Run by the model_store role with its venv's pinned huggingface_hub. The token comes
from a 0600 file (--token-file), never from a command line or an environment, and is
masked in every message this script prints.
Files land under their final names only once complete (huggingface_hub keeps partial
downloads under <local-dir>/.cache/huggingface/, which is removed after success).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

SHA = re.compile(r"^[0-9a-f]{40}$")


def pattern_for(path: str) -> str:
    """An fnmatch pattern that matches exactly ``path``."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in path)


def read_token(path: Path | None) -> str | None:
    """The token in the role's 0600 file; None when no file is given (anonymous)."""
    if path is None:
        return None
    token = path.read_text(encoding="utf-8").strip()
    return token or None


def masked(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--revision", required=True, help="the full 40-hex commit SHA")
    parser.add_argument("--local-dir", required=True, type=Path)
    parser.add_argument("--file", action="append", default=[], help="a path in the repository")
    parser.add_argument("--max-workers", type=int, default=8)
    parser.add_argument(
        "--token-file", type=Path, default=None, help="a 0600 file holding the token"
    )
    args = parser.parse_args(argv)
    if not SHA.match(args.revision):
        print(f"--revision must be a 40-hex commit SHA, got {args.revision!r}", file=sys.stderr)
        return 2
    if not args.file:
        # An empty allow list would mean the whole repository: refuse instead.
        print("nothing to download: no --file given", file=sys.stderr)
        return 2
    token = read_token(args.token_file)
    from huggingface_hub import snapshot_download  # the venv's pinned version

    try:
        snapshot_download(
            token=token if token else False,  # False: no token from HF_HOME or the environment
            repo_id=args.repo_id,
            revision=args.revision,
            local_dir=args.local_dir,
            allow_patterns=[pattern_for(f) for f in args.file],
            max_workers=args.max_workers,
        )
    except Exception as exc:  # every failure is reported the same way, token masked
        print(f"download failed: {type(exc).__name__}: {masked(str(exc), token)}", file=sys.stderr)
        return 1
    missing = [f for f in args.file if not (args.local_dir / f).is_file()]
    if missing:
        print(f"download ended without {missing}", file=sys.stderr)
        return 1
    shutil.rmtree(args.local_dir / ".cache" / "huggingface", ignore_errors=True)
    cache = args.local_dir / ".cache"
    if cache.is_dir() and not any(cache.iterdir()):
        cache.rmdir()
    print(json.dumps({"repo_id": args.repo_id, "revision": args.revision, "files": args.file}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
