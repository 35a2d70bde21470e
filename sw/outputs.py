"""Output paths checked before any work starts: a command that would fail to write its
result after minutes of synthesis or simulation says so at once, in one line."""

import os
from pathlib import Path

import click

__all__ = ["writable_dir", "writable_file"]


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def writable_dir(path, what: str = "output directory") -> Path:
    """``path`` as a directory that exists and is writable, or that can be created (its
    nearest existing ancestor is a writable directory); else a one-line error."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise click.ClickException(f"cannot write the {what} {path}: it is a file")
        if not os.access(path, os.W_OK | os.X_OK):
            raise click.ClickException(f"cannot write the {what} {path}: permission denied")
        return path
    ancestor = _existing_ancestor(path.absolute())
    if not ancestor.is_dir():
        raise click.ClickException(f"cannot write the {what} {path}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise click.ClickException(f"cannot write the {what} {path}: {ancestor} is not "
                                   f"writable")
    return path


def writable_file(path, what: str = "output file") -> Path:
    """``path`` as a file that can be written (created or replaced); else a one-line error."""
    path = Path(path)
    if path.is_dir():
        raise click.ClickException(f"cannot write the {what} {path}: it is a directory")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise click.ClickException(f"cannot write the {what} {path}: permission denied")
        return path
    writable_dir(path.parent if str(path.parent) else Path("."), f"directory of the {what}")
    return path
