"""Weight-table files. ``$readmemh`` text is the canonical form of every ROM table.

``.hex``: one word per line, lowercase hexadecimal, zero-padded to the word width, address 0
first, no comments (every simulator and synthesis tool reads this subset). Xilinx ``.coe``
and Intel ``.mif`` hold the same words for the vendors' memory generators.
"""

from pathlib import Path

__all__ = ["ROM_MODULE", "write_hex", "read_hex", "write_coe", "write_mif"]

#: The hand-written ROM module (``hw/verilog``) that reads these files with ``$readmemh``;
#: every generated design and every simulation build carries a copy.
ROM_MODULE = "spikeforge_rom.v"


def _hex_words(path, words, width: int) -> list[str]:
    digits = max(1, -(-width // 4))
    limit = 1 << width
    lines = []
    for address, word in enumerate(words):
        word = int(word)
        if not 0 <= word < limit:
            raise ValueError(f"{path}: word {address} = {word} does not fit {width} bits")
        lines.append(f"{word:0{digits}x}")
    return lines


def write_hex(path, words, width: int) -> None:
    Path(path).write_text("\n".join(_hex_words(path, words, width)) + "\n")


def write_coe(path, words, width: int) -> None:
    """Xilinx memory-initialisation file (radix 16), for the Block Memory Generator."""
    body = ",\n".join(_hex_words(path, words, width))
    Path(path).write_text(f"; {width}-bit words\nmemory_initialization_radix=16;\n"
                          f"memory_initialization_vector=\n{body};\n")


def write_mif(path, words, width: int) -> None:
    """Intel (Altera) memory-initialisation file, for ``altsyncram``/ROM IP."""
    lines = _hex_words(path, words, width)
    body = "".join(f"    {address:x} : {word};\n" for address, word in enumerate(lines))
    Path(path).write_text(f"WIDTH={width};\nDEPTH={len(lines)};\n\nADDRESS_RADIX=HEX;\n"
                          f"DATA_RADIX=HEX;\n\nCONTENT BEGIN\n{body}END;\n")


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
