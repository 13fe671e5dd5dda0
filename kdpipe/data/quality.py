"""What a labelled data set holds that its user should hear of before training, each with what kdpipe
does about it: rows without a label, empty texts, duplicate texts (and copies the split puts on both
sides of it), classes too small to reach every split. init lists them beside the config it writes;
the run and `kdpipe check` say them as the data loads."""

from __future__ import annotations

from collections import Counter

from kdpipe.errors import DataError

FIRST = 5  # rows named in a refusal


def count_rows(n: int) -> str:
    return f"{n:,} row{'s' if n != 1 else ''}"


def missing(value) -> bool:
    """An empty cell: None, NaN (pandas' empty cell) or a blank string."""
    return value is None or (isinstance(value, float) and value != value) or not str(value).strip()


def label_name(value) -> str:
    """A label as text: a column of whole numbers that pandas read as floats (for an empty cell) keeps
    its integer names ("3", not "3.0")."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def unlabelled(where: str, rows: list[int], total: int, column: str, drop: bool) -> str | None:
    """Rows without a label (`rows`: their line numbers in the file): refused, naming how many and the
    first, or with data.drop_unlabelled left out with a note (returned)."""
    if not rows:
        return None
    first = ", ".join(map(str, rows[:FIRST])) + (", ..." if len(rows) > FIRST else "")
    said = (f"{len(rows):,} of {total:,} rows {'have' if len(rows) > 1 else 'has'} no {column!r} "
            f"(row{'s' if len(rows) > 1 else ''} {first})")
    if not drop:
        raise DataError(f"{where}: {said}; fill them in, or set data.drop_unlabelled: true to leave them out")
    return f"{where}: {said}: left out (data.drop_unlabelled)"


def text_notes(where: str, texts: list[str], labels: list[str] | None, split: tuple,
               parts: tuple | None = None) -> list[str]:
    """Notes on labelled (or plain) texts as loaded: duplicates, the copies the split (`parts`: train,
    validation and test indices) puts on more than one side, classes too small for every split."""
    out = []
    counts = Counter(texts)
    copies = sum(c - 1 for c in counts.values() if c > 1)
    if copies:
        line = f"{where}: {copies:,} text{'s repeat' if copies > 1 else ' repeats'} an earlier one"
        if parts is not None:
            side: dict[str, set] = {}
            for k, idx in enumerate(parts):
                for i in idx:
                    side.setdefault(texts[i], set()).add(k)
            apart = sum(1 for text, c in counts.items() if c > 1 and len(side.get(text, ())) > 1)
            if apart:
                line += (f"; {apart:,} of them fall in more than one split, so validation and test hold texts "
                         "the models trained on and score them too well")
        if labels is not None:
            label_sets: dict[str, set] = {}
            for text, label in zip(texts, labels):
                label_sets.setdefault(text, set()).add(label)
            conflicting = sum(1 for text, c in counts.items() if c > 1 and len(label_sets[text]) > 1)
            if conflicting:
                line += f"; {conflicting:,} carry different labels"
        out.append(line + ": kept as they are (remove the copies from the file for a clean measurement)")
    if labels is not None:
        need = min_per_class(split)
        small = sorted((n, c) for c, n in Counter(labels).items() if n < need)
        if small:
            out.append(f"{where}: {len(small)} class{'es' if len(small) > 1 else ''} with fewer than {need} "
                       f"examples ({', '.join(f'{c!r}: {n}' for n, c in small[:FIRST])}) cannot reach the "
                       "train, validation and test splits: trained on where they land, but unmeasured elsewhere")
    return out


def min_per_class(split: tuple) -> int:
    """The fewest examples a class needs for the stratified split to put one in each part."""
    for n in range(1, 1000):
        n_train, n_val = int(round(split[0] * n)), int(round(split[1] * n))
        if n_train >= 1 and n_val >= 1 and n - n_train - n_val >= 1:
            return n
    return 1000
