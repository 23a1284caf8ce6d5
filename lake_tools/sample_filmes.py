"""Deterministic seed-style filmes.csv generator: the bundled sample, test inputs and the benchmark's
1M-row file all come from here.

`python -m lake_tools.sample_filmes OUT.csv ROWS [--bad N]`
"""

import argparse
import csv
import random
from pathlib import Path

from lake_assets.lib.lineage import FILMES_HEADERS

# The seed layout's header, as lineage.py declares it for the catalog.
HEADER = list(FILMES_HEADERS["seed"])

_WORDS = (
    "amor saudade noite cidade mar sertão coração destino estrela caminho silêncio verão chuva lembrança família segredo".split()
)
_TITLE_FORMS = ["O {0} e a {1}", "A {0} do {1}", "{0}", "Entre o {0} e o {1}", "Memórias de {0}", "Um {0} em São Paulo"]
_PHRASES = [
    "Uma história de {0}, perdas e recomeços",
    'Ela disse "nunca mais", mas voltou',
    "Em Lisboa, Recife e Luanda, três vidas se cruzam",
    "Baseado no romance de Jorge Amado",
    "Um drama sobre {0}; sobre {1}, também",
]
_COUNTRIES = ["Brazil", "Portugal", "United States of America", "France", "Argentina", "Japan", "India"]
_LANGUAGES = ["pt", "en", "fr", "es", "ja", "hi"]
_GENRES = ["Drama", "Romance", "Comédia", "Crime", "História", "Música"]


def filmes_rows(rows: int, seed: int = 7, bad_rows: int = 0):
    """Yields `rows` data rows; the last `bad_rows` carry values no type accepts (rejection tests)."""
    rnd = random.Random(seed)
    for i in range(rows):
        w = rnd.sample(_WORDS, 2)
        title = rnd.choice(_TITLE_FORMS).format(*[x.capitalize() for x in w]) + f" {i}"
        overview = ". ".join(rnd.choice(_PHRASES).format(*w) for _ in range(rnd.randint(1, 3)))
        if i % 7 == 0:
            overview += "\nSegunda linha: um parágrafo novo."
        date = "" if i % 97 == 0 else f"{rnd.randint(1950, 2024)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"
        votes = str(rnd.randint(0, 30000))
        if i >= rows - bad_rows:
            votes = "muitos"  # not a number: the row must be rejected and counted
        yield [
            title,
            date,
            overview,
            f"{rnd.uniform(0.5, 250):.3f}",
            votes,
            f"{rnd.uniform(1, 10):.1f}",
            ", ".join(rnd.sample(_COUNTRIES, rnd.randint(1, 2))),
            rnd.choice(_LANGUAGES),
            ", ".join(rnd.sample(_GENRES, rnd.randint(1, 3))),
        ]


def write_filmes_csv(path: Path, rows: int, seed: int = 7, bad_rows: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(filmes_rows(rows, seed, bad_rows))
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("rows", type=int)
    parser.add_argument("--bad", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    write_filmes_csv(args.out, args.rows, args.seed, args.bad)
