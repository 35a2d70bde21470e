"""Output paths checked before any work starts: a command that would fail to write its
result after minutes of synthesis or simulation says so at once, in one line."""

import os
import tempfile
from pathlib import Path

import click

__all__ = ["writable_dir", "writable_file"]


def _existing_ancestor(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _can_create_in(directory: Path) -> str | None:
    """``None`` if a file can be created (and removed) in ``directory``, else why not.

    Permission bits do not answer it: as root every directory looks writable, ``/proc``
    and ``/sys`` included, and a read-only mount or a full disk does not show in them."""
    try:
        handle, name = tempfile.mkstemp(prefix=".spikeforge-probe-", dir=directory)
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(handle)
    try:
        os.unlink(name)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def writable_dir(path, what: str = "output directory") -> Path:
    """``path`` as a directory that exists and is writable, or that can be created (its
    nearest existing ancestor is a directory a file can be created in); else a one-line
    error. Checked by creating and removing a probe file."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise click.ClickException(f"cannot write the {what} {path}: it is a file")
        reason = _can_create_in(path)
        if reason:
            raise click.ClickException(f"cannot write the {what} {path}: {reason}")
        return path
    ancestor = _existing_ancestor(path.absolute())
    if not ancestor.is_dir():
        raise click.ClickException(f"cannot write the {what} {path}: {ancestor} is a file")
    reason = _can_create_in(ancestor)
    if reason:
        raise click.ClickException(f"cannot write the {what} {path}: {ancestor} is not "
                                   f"writable ({reason})")
    return path


def writable_file(path, what: str = "output file") -> Path:
    """``path`` as a file that can be written (created or replaced); else a one-line error."""
    path = Path(path)
    if path.is_dir():
        raise click.ClickException(f"cannot write the {what} {path}: it is a directory")
    if path.exists():
        try:  # opened for appending and closed: the contents stay as they are
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise click.ClickException(f"cannot write the {what} {path}: "
                                       f"{exc.strerror or exc}") from None
        return path
    writable_dir(path.parent if str(path.parent) else Path("."), f"directory of the {what}")
    return path
