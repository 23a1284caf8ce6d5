"""What the catalog knows of a trusted table before it ever runs: the raw fields each trusted column
is made from (`column_lineage`), and the columns the table declares (`declared_columns`).

`trusted/tmdb` reads one field of TMDB's movie details (GET /movie/{id}) per column, named in
`TMDB_FIELDS`; `standardise_details` (transforms/tmdb.py) reads its field names from there, so the
transform and its lineage cannot disagree. `trusted/filmes` renames the CSV header by one rule,
`normalise_column_name`, so its lineage is derived from each accepted layout's header as the source
files spell it (`FILMES_HEADERS`): `Data de lançamento` -> `data_de_lancamento`. A file may spell a
name differently (accents, case, spaces) and still fit the layout; the lineage names the canonical
spelling. `dt`, the day's folder, comes from no field and has no lineage.

With no layout, a table with several layouts (`filmes`) answers for all of them at once: the union of
their columns, each said to come from every header name that feeds it. That is what the catalog shows
before a run, when the layout of the next file is not known.
"""

from collections.abc import Mapping

from lake_assets.lib.contracts.rules import Contract
from lake_assets.lib.registry import TRUSTED_FILMES, TRUSTED_TMDB
from lake_assets.lib.transforms.columns import normalise_column_name

# trusted/tmdb column -> the TMDB JSON field it is made from (a list of objects keeps their `name`s).
TMDB_FIELDS = {
    "tmdb_id": "id",
    "imdb_id": "imdb_id",
    "titulo": "title",
    "titulo_original": "original_title",
    "data_de_lancamento": "release_date",
    "visao_geral": "overview",
    "popularidade": "popularity",
    "votos": "vote_count",
    "media_de_votos": "vote_average",
    "idioma_original": "original_language",
    "generos": "genres",
    "produtoras": "production_companies",
    "paises_de_origem": "production_countries",
    "duracao_minutos": "runtime",
    "orcamento": "budget",
    "receita": "revenue",
    "status": "status",
}

# The header of each accepted filmes layout, as its source files spell it: the original design's
# filmes.csv (sample_data/filmes.csv) and the programme's movies.csv and series.csv extracts.
_PROGRAMME_MOVIES = (
    "id",
    "tituloPincipal",
    "tituloOriginal",
    "anoLancamento",
    "tempoMinutos",
    "genero",
    "notaMedia",
    "numeroVotos",
    "generoArtista",
    "personagem",
    "nomeArtista",
    "anoNascimento",
    "anoFalecimento",
    "profissao",
    "titulosMaisConhecidos",
)
FILMES_HEADERS: Mapping[str, tuple[str, ...]] = {
    "seed": (
        "Titulo",
        "Data de lançamento",
        "Visão geral",
        "Popularidade",
        "Votos",
        "Média de votos",
        "País de Origem",
        "Idioma Original",
        "Gêneros",
    ),
    "programme_movies": _PROGRAMME_MOVIES,
    # series.csv has the end year right after the start year.
    "programme_series": (*_PROGRAMME_MOVIES[:4], "anoTermino", *_PROGRAMME_MOVIES[4:]),
}

Lineage = dict[str, tuple[str, ...]]  # trusted column -> the raw fields it is made from


def _tmdb(layout: str) -> Lineage:
    if layout != "tmdb_details":
        raise KeyError(f"{TRUSTED_TMDB.path} has one layout, tmdb_details, not {layout!r}")
    return {column: (field,) for column, field in TMDB_FIELDS.items()}


def _filmes(layout: str) -> Lineage:
    if layout not in FILMES_HEADERS:
        raise KeyError(f"{TRUSTED_FILMES.path} has no layout {layout!r} (it has {', '.join(FILMES_HEADERS)})")
    return {normalise_column_name(name): (name,) for name in FILMES_HEADERS[layout]}


_LAYOUTS = {TRUSTED_TMDB.path: ("tmdb_details",), TRUSTED_FILMES.path: tuple(FILMES_HEADERS)}
_BY_LAYOUT = {TRUSTED_TMDB.path: _tmdb, TRUSTED_FILMES.path: _filmes}


def column_lineage(table: str, layout: str | None = None) -> Lineage:
    """Each column of a trusted table (`trusted/tmdb`, `trusted/filmes`: the registry's path, which is
    also `Contract.table`) -> the raw fields it is made from, in the table's column order. With no
    layout, the union over the table's layouts. An unknown table or layout is a KeyError."""
    if table not in _BY_LAYOUT:
        raise KeyError(f"no column lineage for {table!r}: the trusted tables are {', '.join(_BY_LAYOUT)}")
    if layout is not None:
        return _BY_LAYOUT[table](layout)
    union: Lineage = {}
    for each in _LAYOUTS[table]:
        for column, fields in _BY_LAYOUT[table](each).items():
            union[column] = tuple(dict.fromkeys((*union.get(column, ()), *fields)))
    return union


def declared_columns(contract: Contract, layout: str | None = None) -> list[tuple[str, str, str]]:
    """The table's columns as (name, type, description), from its contract: a layout's columns with
    `Contract.column_docs` (the text the run-time schema carries too), or, with no layout, the union
    of every layout's, each description ending with the layouts the column is in. A table with one
    layout gets exactly that layout's, so its schema is the same before and after a run."""
    if layout is None and len(contract.layouts) == 1:
        layout = next(iter(contract.layouts))
    if layout is not None:
        docs = contract.column_docs(layout)
        return [(name, kind, docs[name]) for name, kind in contract.layouts[layout].items()]
    kinds: dict[str, str] = {}
    docs_by_layout: dict[str, dict[str, str]] = {}  # column -> {layout: its docs there}
    for each, columns in contract.layouts.items():
        docs = contract.column_docs(each)
        for name, kind in columns.items():
            # One name, one type: a reader of the union could not tell which type a value has.
            if kinds.setdefault(name, kind) != kind:
                raise ValueError(f"{contract.table}: column {name} is {kinds[name]} in one layout and {kind} in {each}")
            docs_by_layout.setdefault(name, {})[each] = docs[name]
    return [(name, kinds[name], _union_doc(docs_by_layout[name], len(contract.layouts))) for name in kinds]


def _union_doc(docs: Mapping[str, str], layouts: int) -> str:
    # Rules can apply in one layout and not another: each layout's text is kept when they differ.
    texts = list(dict.fromkeys(docs.values()))
    text = texts[0] if len(texts) == 1 else " ".join(f"In {layout}: {doc}" for layout, doc in docs.items())
    where = "every layout" if len(docs) == layouts else f"layout{'s' * (len(docs) > 1)} {', '.join(docs)}"
    return f"{text} In {where}.".strip()
