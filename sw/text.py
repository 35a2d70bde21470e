"""Plain-text output shared by the commands."""

__all__ = ["table"]


def table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns, indented: ``name  value`` per row."""
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)
