"""``$readmemh`` weight files: the canonical on-disk form of every ROM table.

One word per line, lowercase hexadecimal, zero-padded to the word width, address 0 first, no
comments (every simulator and synthesis tool reads this subset).
"""

from pathlib import Path

__all__ = ["write_hex", "read_hex"]


def write_hex(path, words, width: int) -> None:
    digits = max(1, -(-width // 4))
    limit = 1 << width
    lines = []
    for address, word in enumerate(words):
        word = int(word)
        if not 0 <= word < limit:
            raise ValueError(f"{path}: word {address} = {word} does not fit {width} bits")
        lines.append(f"{word:0{digits}x}")
    Path(path).write_text("\n".join(lines) + "\n")


def read_hex(path, width: int, depth: int) -> list[int]:
    """Read and check a file written by :func:`write_hex` (or by hand)."""
    path = Path(path)
    words = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            word = int(line, 16)
        except ValueError:
            raise ValueError(f"{path}:{number}: not a hexadecimal word: {line!r}") from None
        if word >> width:
            raise ValueError(f"{path}:{number}: word {line} does not fit {width} bits")
        words.append(word)
    if len(words) != depth:
        raise ValueError(f"{path}: expected {depth} words, found {len(words)}")
    return words
