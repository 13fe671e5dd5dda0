"""How sizes read in reports and model cards."""


def fmt_size(n: int | float | None) -> str:
    """Bytes as B, KB, MB or GB (powers of 1024), one decimal; '-' when unknown."""
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
