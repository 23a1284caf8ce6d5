"""A faithful fake of the two TMDB endpoints the collector uses, and the catalogue it serves.

One deterministic catalogue (`list_result`, `movie_details`, `top_rated_page`) feeds both the fake
HTTP server used by the tests and the benchmark, and the offline snapshot bundled with the package
(`write_snapshot`), so the offline run and the tests see the same movies. Response shapes, error
bodies and quirks follow TMDB's API documentation and the examples of its OpenAPI description: pt-BR titles,
`overview: ""` without a translation, `imdb_id`/`belongs_to_collection`/`logo_path` sometimes null,
English country names, 20 results a page, paging capped at 500 with the 422 `errors` shape.

Regenerate the snapshot after changing the catalogue:
    .venv/bin/python -m lake_tools.fake_tmdb --write-snapshot
"""

from __future__ import annotations

import bisect
import gzip
import json
import random
import socket
import string
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lake_assets.lib.tmdb_client import SNAPSHOT_DIR, SNAPSHOT_MOVIES_FILE, SNAPSHOT_PAGES_FILE

RESULTS_PER_PAGE = 20
MAX_PAGE = 500
# The bundled snapshot: 17 pages (340 listings, 16 of them repeats) give about 200 Drama/Romance movies.
SNAPSHOT_PAGES = 17

TOKEN = "fake-read-access-token-0123456789"
API_KEY = "fakeapikey0123456789abcdef012345"

GENRES_PT = {
    28: "Ação",
    12: "Aventura",
    16: "Animação",
    35: "Comédia",
    80: "Crime",
    99: "Documentário",
    18: "Drama",
    10751: "Família",
    14: "Fantasia",
    36: "História",
    27: "Terror",
    10402: "Música",
    9648: "Mistério",
    10749: "Romance",
    878: "Ficção científica",
    10770: "Cinema TV",
    53: "Thriller",
    10752: "Guerra",
    37: "Faroeste",
}
DRAMA, ROMANCE = 18, 10749
_OTHER_GENRES = [g for g in GENRES_PT if g not in (DRAMA, ROMANCE)]

_COUNTRIES = {
    "US": "United States of America",
    "GB": "United Kingdom",
    "BR": "Brazil",
    "PT": "Portugal",
    "FR": "France",
    "JP": "Japan",
    "ES": "Spain",
    "MX": "Mexico",
    "AR": "Argentina",
    "IT": "Italy",
    "KR": "South Korea",
    "IN": "India",
    "DE": "Germany",
}
_LANGUAGES = {
    "en": ("English", "English"),
    "pt": ("Portuguese", "Português"),
    "fr": ("French", "Français"),
    "ja": ("Japanese", "日本語"),
    "es": ("Spanish", "Español"),
    "it": ("Italian", "Italiano"),
    "ko": ("Korean", "한국어/조선말"),
    "hi": ("Hindi", "हिन्दी"),
    "de": ("German", "Deutsch"),
    "la": ("Latin", "Latin"),
}
# original_language -> (weight, origin countries)
_ORIGINS = {
    "en": (45, ["US", "US", "GB"]),
    "pt": (10, ["BR", "BR", "PT"]),
    "fr": (8, ["FR"]),
    "ja": (7, ["JP"]),
    "es": (7, ["ES", "MX", "AR"]),
    "it": (6, ["IT"]),
    "ko": (5, ["KR"]),
    "hi": (4, ["IN"]),
    "de": (4, ["DE"]),
}
# country -> (id, name, logo_path or None): small studios often have no logo on TMDB.
_COMPANIES = {
    "US": [
        (4, "Paramount Pictures", "/gz66EfNoYPqHTYI4q9UEN4CbHRc.png"),
        (33, "Universal Pictures", "/8lvHyhjr8oUKOOy2dKXoALWKdp0.png"),
        (174, "Warner Bros. Pictures", "/IuAlhI9eVC9Z8UQWOIDdWRKSEJ.png"),
        (41077, "A24", "/1ZXsGaFPgrgS6ZZGS37AqD5uU12.png"),
        (10211, "Alfran Productions", None),
        (2183, "Killer Films", None),
    ],
    "GB": [
        (10163, "Working Title Films", "/5r5oRJqmXkm2RIMfsMmvVcb2Gp9.png"),
        (6705, "Film4 Productions", "/6DnfFb6EFZwFuSspC0qTgB3K7ce.png"),
        (288, "BBC Film", None),
    ],
    "BR": [(2617, "Globo Filmes", "/mpcaYpTLBw8KO2HyXEqPsyXhbU4.png"), (7982, "O2 Filmes", None), (12034, "VideoFilmes", None)],
    "PT": [(34870, "Clap Filmes", None), (5962, "O Som e a Fúria", None)],
    "FR": [
        (9, "Gaumont", "/9yBVHmcYFmTIAfvlRhOzjMCZvLZ.png"),
        (694, "StudioCanal", "/4AS3KZ84DeVkSu7uOVhkJU9yHMN.png"),
        (4475, "Les Films du Losange", None),
    ],
    "JP": [
        (882, "Toho", "/iDw9Xxok1d9WAM2zFicI8p3khTH.png"),
        (10342, "Studio Ghibli", "/uFuxPEZRUcBTEiYIxjHJq62Vr77.png"),
        (51918, "Bitters End", None),
    ],
    "ES": [(49, "El Deseo", "/5mDMtJGeswwmjNc1nzZ1UDKSNTs.png"), (12021, "Morena Films", None)],
    "MX": [(11212, "Cha Cha Chá Films", None)],
    "AR": [(8206, "Patagonik Film Group", "/2a7VJGnWqf41PfTwnQb4ALm9btL.png")],
    "IT": [(1583, "Rai Cinema", "/8B6hXXRb1pDz9Z9gO9bMz8MZbVN.png"), (18289, "Indiana Production", None)],
    "KR": [(4399, "CJ Entertainment", "/xboSuOAmVLXCz0N9kqQqZaCxPUq.png"), (7036, "Barunson E&A", None)],
    "IN": [(1569, "Yash Raj Films", "/3BPX5VGBov8SDqTV7wC1L1xShAS.png"), (1885, "Dharma Productions", None)],
    "DE": [(1473, "X Filme Creative Pool", "/w0QE0AgREbmDBZ5jJqsUTDkZmDS.png"), (47, "Constantin Film", None)],
}

_TITLE_HEADS = [
    "O Silêncio",
    "A Promessa",
    "As Cartas",
    "O Último Verão",
    "A Casa",
    "Os Dias",
    "O Jardim",
    "A Canção",
    "O Caminho",
    "A Noite",
    "O Segredo",
    "O Retrato",
    "A Estrada",
    "O Farol",
    "A Despedida",
    "O Encontro",
    "As Memórias",
    "O Tempo",
    "A Ilha",
    "O Amor",
    "A Herança",
    "O Regresso",
    "A Travessia",
    "O Inverno",
    "As Ondas",
]
_TITLE_TAILS = [
    "de Lisboa",
    "do Sertão",
    "em Veneza",
    "do Mar",
    "de Inverno",
    "sem Fim",
    "de Papel",
    "da Meia-Noite",
    "das Montanhas",
    "de Outono",
    "no Rio",
    "em Tóquio",
    "de Vidro",
    "do Norte",
    "à Beira-Mar",
    "de Família",
    "entre Nós",
    "em Paris",
]
_ORIGINAL_TITLES = {
    "en": (
        [
            "The Silence",
            "The Promise",
            "Letters",
            "Last Summer",
            "The House",
            "Days",
            "The Garden",
            "The Song",
            "The Road",
            "The Lighthouse",
            "Farewell",
            "The Crossing",
        ],
        ["of Lisbon", "at Sea", "in Winter", "Without End", "of Paper", "at Midnight", "up North"],
    ),
    "fr": (["Le Silence", "La Promesse", "Les Lettres", "La Maison", "Le Jardin"], ["d'Hiver", "de Minuit", "sans Fin"]),
    "es": (["El Silencio", "La Promesa", "Las Cartas", "La Casa", "El Jardín"], ["de Invierno", "del Mar", "sin Fin"]),
    "it": (["Il Silenzio", "La Promessa", "Le Lettere", "La Casa", "Il Giardino"], ["d'Inverno", "del Mare", "senza Fine"]),
    "de": (["Das Schweigen", "Das Versprechen", "Die Briefe", "Das Haus"], ["im Winter", "am Meer", "ohne Ende"]),
    "ja": (["静かな", "約束の", "最後の", "遠い"], ["夏", "海", "家", "手紙"]),
    "ko": (["침묵의 ", "약속의 ", "마지막 ", "먼 "], ["여름", "바다", "집", "편지"]),
    "hi": (["खामोश ", "वादा ", "आखिरी ", "दूर "], ["दिन", "सफर", "घर", "खत"]),
}
_PLACES = [
    "Lisboa",
    "Recife",
    "Paris",
    "Tóquio",
    "Buenos Aires",
    "uma pequena vila do interior",
    "Nova York",
    "Roma",
    "Seul",
    "Berlim",
    "Mumbai",
    "Salvador",
    "Porto Alegre",
]
_PEOPLE = [
    "uma jovem professora",
    "um pescador solitário",
    "dois irmãos",
    "uma pianista em crise",
    "um médico recém-formado",
    "uma família de imigrantes",
    "um velho fotógrafo",
    "duas amigas de infância",
    "um soldado que volta da guerra",
    "uma escritora viúva",
]
_ACTIONS = [
    "descobre um segredo que pode mudar sua vida",
    "precisa escolher entre o amor e o dever",
    "tenta reconstruir a vida depois de uma perda",
    "reencontra um antigo amor",
    "enfrenta o preconceito de uma cidade inteira",
    "parte em busca do pai que nunca conheceu",
    "luta para manter a família unida",
]
_CODAS = [
    "Aos poucos, as lembranças do passado voltam à tona.",
    "Mas o tempo tem outros planos.",
    "Uma história sobre perdão, memória e recomeço.",
    "Entre encontros e despedidas, nada será como antes.",
    "O que começa como um acaso se torna uma jornada inesquecível.",
]
_TAGLINES = [
    "Algumas promessas duram para sempre.",
    "O amor não tem fronteiras.",
    "Toda história tem dois lados.",
    "Nada será como antes.",
    "O passado nunca fica para trás.",
]


def _genres(*ids: int) -> list[dict]:
    return [{"id": g, "name": GENRES_PT[g]} for g in ids]


def _countries(*codes: str) -> list[dict]:
    return [{"iso_3166_1": c, "name": _COUNTRIES[c]} for c in codes]


def _languages(*codes: str) -> list[dict]:
    return [{"english_name": _LANGUAGES[c][0], "iso_639_1": c, "name": _LANGUAGES[c][1]} for c in codes]


_PARAMOUNT = {"id": 4, "logo_path": "/gz66EfNoYPqHTYI4q9UEN4CbHRc.png", "name": "Paramount Pictures", "origin_country": "US"}
_GODFATHER_COLLECTION = {
    "id": 230,
    "name": "O Poderoso Chefão: Coleção",
    "poster_path": "/zqV8MGXfpLZiFVObLxpAI7wWonJ.jpg",
    "backdrop_path": "/3WZTxpgscsmoUk81TuECXdFOD0R.jpg",
}

# Five real movies of TMDB's top-rated list, with their real facts, at their real ranks on page 1.
REAL_MOVIES: dict[int, dict] = {
    238: {
        "adult": False,
        "backdrop_path": "/tmU7GeKVybMWFButWEGl2M4GeiP.jpg",
        "belongs_to_collection": _GODFATHER_COLLECTION,
        "budget": 6000000,
        "genres": _genres(18, 80),
        "homepage": "http://www.thegodfather.com/",
        "id": 238,
        "imdb_id": "tt0068646",
        "origin_country": ["US"],
        "original_language": "en",
        "original_title": "The Godfather",
        "overview": "Em 1945, Don Corleone é o chefe de uma mafiosa família italiana de Nova York. Ele costuma "
        "apadrinhar várias pessoas, realizando importantes favores para elas, em troca de favores "
        "futuros. Com a chegada das drogas, as famílias começam uma disputa pelo promissor mercado. "
        "Quando Corleone se recusa a facilitar a entrada dos narcóticos na cidade, sua família "
        "começa a sofrer atentados.",
        "popularity": 100.932,
        "poster_path": "/3bhkrj58Vtu7enYsRolD1fZdja1.jpg",
        "production_companies": [
            _PARAMOUNT,
            {"id": 10211, "logo_path": None, "name": "Alfran Productions", "origin_country": "US"},
        ],
        "production_countries": _countries("US"),
        "release_date": "1972-03-14",
        "revenue": 245066411,
        "runtime": 175,
        "spoken_languages": _languages("en", "it", "la"),
        "status": "Released",
        "tagline": "Uma oferta que você não pode recusar.",
        "title": "O Poderoso Chefão",
        "video": False,
        "vote_average": 8.7,
        "vote_count": 17806,
    },
    278: {
        "adult": False,
        "backdrop_path": "/kXfqcdQKsToO0OUXHcrrNCHDBzO.jpg",
        "belongs_to_collection": None,
        "budget": 25000000,
        "genres": _genres(18, 80),
        "homepage": "",
        "id": 278,
        "imdb_id": "tt0111161",
        "origin_country": ["US"],
        "original_language": "en",
        "original_title": "The Shawshank Redemption",
        "overview": "Em 1946, Andy Dufresne, um banqueiro jovem e bem sucedido, tem a sua vida radicalmente "
        "modificada ao ser condenado por um crime que nunca cometeu, o homicídio de sua esposa e "
        "do amante dela. Ele é mandado para a Penitenciária Estadual de Shawshank, no Maine, onde "
        "faz amizade com Ellis Boyd Redding, um prisioneiro que cumpre pena há 20 anos.",
        "popularity": 98.25,
        "poster_path": "/q6y0Go1tsGEsmtFryDOJo3dEmqu.jpg",
        "production_companies": [
            {
                "id": 97,
                "logo_path": "/7znWcbDd4PcJzJUlJxYqAlPPykp.png",
                "name": "Castle Rock Entertainment",
                "origin_country": "US",
            }
        ],
        "production_countries": _countries("US"),
        "release_date": "1994-09-23",
        "revenue": 28341469,
        "runtime": 142,
        "spoken_languages": _languages("en"),
        "status": "Released",
        "tagline": "O medo pode prendê-lo. A esperança pode libertá-lo.",
        "title": "Um Sonho de Liberdade",
        "video": False,
        "vote_average": 8.7,
        "vote_count": 23656,
    },
    240: {
        "adult": False,
        "backdrop_path": "/kGzFbGhp99zva6oZODW5atUtnqi.jpg",
        "belongs_to_collection": _GODFATHER_COLLECTION,
        "budget": 13000000,
        "genres": _genres(18, 80),
        "homepage": "",
        "id": 240,
        "imdb_id": "tt0071562",
        "origin_country": ["US"],
        "original_language": "en",
        "original_title": "The Godfather Part II",
        "overview": "Após a máfia matar sua família, o jovem Vito foge da Sicília para a América. Anos depois, "
        "seu filho Michael Corleone tenta expandir o império da família para Las Vegas, Hollywood "
        "e Cuba.",
        "popularity": 57.533,
        "poster_path": "/hek3koDUyRQk7FIhPXsa6mT2Zc3.jpg",
        "production_companies": [
            _PARAMOUNT,
            {"id": 536, "logo_path": None, "name": "The Coppola Company", "origin_country": "US"},
        ],
        "production_countries": _countries("US"),
        "release_date": "1974-12-20",
        "revenue": 102600000,
        "runtime": 202,
        "spoken_languages": _languages("en", "it", "es", "la"),
        "status": "Released",
        "tagline": "A história continua.",
        "title": "O Poderoso Chefão: Parte II",
        "video": False,
        "vote_average": 8.6,
        "vote_count": 10775,
    },
    19404: {
        "adult": False,
        "backdrop_path": "/vI3aUGTuRRdM7J78KIdW98LdxE5.jpg",
        "belongs_to_collection": None,
        "budget": 13200000,
        "genres": _genres(35, 18, 10749),
        "homepage": "https://www.yashrajfilms.com/movies/dilwale-dulhania-le-jayenge",
        "id": 19404,
        "imdb_id": "tt0112870",
        "origin_country": ["IN"],
        "original_language": "hi",
        "original_title": "दिलवाले दुल्हनिया ले जायेंगे",
        "overview": "",
        "popularity": 27.324,
        "poster_path": "/ktejodbcdCPXbMMdnpI9BUxW6O8.jpg",
        "production_companies": [
            {"id": 1569, "logo_path": "/3BPX5VGBov8SDqTV7wC1L1xShAS.png", "name": "Yash Raj Films", "origin_country": "IN"}
        ],
        "production_countries": _countries("IN"),
        "release_date": "1995-10-19",
        "revenue": 100000000,
        "runtime": 190,
        "spoken_languages": _languages("hi"),
        "status": "Released",
        "tagline": "",
        "title": "Dilwale Dulhania Le Jayenge",
        "video": False,
        "vote_average": 8.6,
        "vote_count": 4113,
    },
    372058: {
        "adult": False,
        "backdrop_path": "/dIWwZW7dJJtqC6CgWzYkNVKIUm8.jpg",
        "belongs_to_collection": None,
        "budget": 0,
        "genres": _genres(10749, 16, 18),
        "homepage": "https://www.kiminona.com/",
        "id": 372058,
        "imdb_id": "tt5311514",
        "origin_country": ["JP"],
        "original_language": "ja",
        "original_title": "君の名は。",
        "overview": "Mitsuha é a filha do prefeito de uma pequena cidade, mas sonha em tentar a sorte em Tóquio. "
        "Taki trabalha em um restaurante em Tóquio. Os dois não se conhecem, mas estão conectados "
        "pelas imagens de seus sonhos.",
        "popularity": 94.963,
        "poster_path": "/q719jXXEzOoYaps6babgKnONONX.jpg",
        "production_companies": [
            {"id": 10342, "logo_path": "/tRhFPmTpNFd0kVLq8IfJsbvfmzn.png", "name": "CoMix Wave Films", "origin_country": "JP"},
            {"id": 142475, "logo_path": None, "name": "Story Inc.", "origin_country": "JP"},
        ],
        "production_countries": _countries("JP"),
        "release_date": "2016-08-26",
        "revenue": 358000000,
        "runtime": 106,
        "spoken_languages": _languages("ja"),
        "status": "Released",
        "tagline": "",
        "title": "Your Name.",
        "video": False,
        "vote_average": 8.5,
        "vote_count": 9734,
    },
}
_REAL_SLOTS = {0: 238, 1: 278, 3: 240, 5: 19404, 8: 372058}
_REAL_SLOT_OF = {movie_id: slot for slot, movie_id in _REAL_SLOTS.items()}

# Synthetic ids: an invertible scramble of the rank slot, so /movie/{id} can tell which rank it is.
_ID_MODULUS, _ID_STEP, _ID_OFFSET, _ID_BASE = 1_000_000, 736_871, 12_345, 1_000
_ID_STEP_INVERSE = pow(_ID_STEP, -1, _ID_MODULUS)
MAX_SLOTS = MAX_PAGE * RESULTS_PER_PAGE

_LIST_FIELDS = (
    "adult",
    "backdrop_path",
    "genre_ids",
    "id",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "poster_path",
    "release_date",
    "title",
    "video",
    "vote_average",
    "vote_count",
)


def movie_id_at(slot: int) -> int:
    """The id of the movie ranked `slot` (0-based) in the catalogue."""
    if slot in _REAL_SLOTS:
        return _REAL_SLOTS[slot]
    return _ID_BASE + (slot * _ID_STEP + _ID_OFFSET) % _ID_MODULUS


def slot_of(movie_id: int) -> int | None:
    """The rank slot of a catalogue movie, or None when the id is not in the catalogue."""
    if movie_id in _REAL_SLOT_OF:
        return _REAL_SLOT_OF[movie_id]
    slot = ((movie_id - _ID_BASE - _ID_OFFSET) * _ID_STEP_INVERSE) % _ID_MODULUS
    if slot < MAX_SLOTS and slot not in _REAL_SLOTS and movie_id_at(slot) == movie_id:
        return slot
    return None


assert all(slot_of(movie_id_at(s)) == s for s in range(MAX_SLOTS)), "catalogue ids must be unique"


def _image_path(rng: random.Random, suffix: str = ".jpg") -> str:
    return "/" + "".join(rng.choices(string.ascii_letters + string.digits, k=27)) + suffix


def movie_details(movie_id: int) -> dict | None:
    """`GET /movie/{id}?language=pt-BR` for a catalogue movie; None for an id not in the catalogue."""
    if movie_id in REAL_MOVIES:
        return json.loads(json.dumps(REAL_MOVIES[movie_id]))
    slot = slot_of(movie_id)
    if slot is None:
        return None
    rng = random.Random(f"tmdb-fake:{movie_id}")
    language = rng.choices(list(_ORIGINS), weights=[w for w, _ in _ORIGINS.values()])[0]
    country = rng.choice(_ORIGINS[language][1])

    roll = rng.random()
    if roll < 0.42:
        genre_ids = [DRAMA] + rng.sample(_OTHER_GENRES, rng.randint(0, 2))
    elif roll < 0.54:
        genre_ids = [ROMANCE] + rng.sample(_OTHER_GENRES, rng.randint(0, 2))
    elif roll < 0.60:
        genre_ids = [DRAMA, ROMANCE] + rng.sample(_OTHER_GENRES, rng.randint(0, 1))
    else:
        genre_ids = rng.sample(_OTHER_GENRES, rng.randint(1, 3))
    rng.shuffle(genre_ids)

    head, tail = rng.choice(_TITLE_HEADS), rng.choice(_TITLE_TAILS)
    title = f"{head} {tail}"
    if language == "pt":
        original_title = title
    else:
        heads, tails = _ORIGINAL_TITLES[language]
        joiner = "" if language in ("ja", "ko", "hi") else " "
        original_title = f"{rng.choice(heads)}{joiner}{rng.choice(tails)}"
        if rng.random() < 0.15:  # released in Brazil under its original title
            title = original_title
    has_translation = rng.random() >= 0.08
    overview = (
        (
            f"Em {rng.choice(_PLACES)}, em {rng.randint(1930, 2020)}, {rng.choice(_PEOPLE)} "
            f"{rng.choice(_ACTIONS)}. {rng.choice(_CODAS)}"
        )
        if has_translation
        else ""
    )
    release_date = "" if rng.random() < 0.03 else (f"{rng.randint(1931, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}")
    companies = []
    for company_id, name, logo in rng.sample(_COMPANIES[country], rng.randint(0, min(2, len(_COMPANIES[country])))):
        companies.append({"id": company_id, "logo_path": logo, "name": name, "origin_country": country})
    countries = [country] + ([rng.choice(["FR", "DE", "US", "GB"])] if rng.random() < 0.2 else [])
    countries = list(dict.fromkeys(countries))
    spoken = [language] + (["en"] if language != "en" and rng.random() < 0.3 else [])
    budget = 0 if rng.random() < 0.3 else rng.randrange(500_000, 120_000_000, 100_000)
    revenue = 0 if budget == 0 or rng.random() < 0.2 else int(budget * rng.uniform(0.3, 8.0))
    collection = None
    if rng.random() < 0.15:
        collection = {
            "id": 8000 + movie_id % 90_000,
            "name": f"{head}: Coleção",
            "poster_path": _image_path(rng),
            "backdrop_path": _image_path(rng),
        }
    return {
        "adult": False,
        "backdrop_path": None if rng.random() < 0.02 else _image_path(rng),
        "belongs_to_collection": collection,
        "budget": budget,
        "genres": _genres(*genre_ids),
        "homepage": "" if rng.random() < 0.5 else f"https://www.{country.lower()}films.example/{movie_id}",
        "id": movie_id,
        "imdb_id": None if rng.random() < 0.1 else f"tt{rng.randint(30000, 29999999):07d}",
        "origin_country": [country],
        "original_language": language,
        "original_title": original_title,
        "overview": overview,
        "popularity": round(rng.uniform(3.0, 60.0), 3),
        "poster_path": _image_path(rng),
        "production_companies": companies,
        "production_countries": _countries(*countries),
        "release_date": release_date,
        "revenue": revenue,
        "runtime": 0 if rng.random() < 0.02 else rng.randint(75, 190),
        "spoken_languages": _languages(*spoken),
        "status": "Released",
        "tagline": rng.choice(_TAGLINES) if has_translation and rng.random() < 0.6 else "",
        "title": title,
        "video": False,
        "vote_average": round(8.7 - slot * 0.00025, 3),
        "vote_count": rng.randint(200, 30000),
    }


def list_result(movie_id: int) -> dict:
    """The movie as a `top_rated` result: a projection of its details, with `genre_ids`."""
    details = movie_details(movie_id)
    details["genre_ids"] = [g["id"] for g in details["genres"]]
    return {field: details[field] for field in _LIST_FIELDS}


def page_ids(page: int, *, duplicates: bool = False) -> list[int]:
    """The ids on one `top_rated` page. With `duplicates`, ranks shift between page fetches as they do
    on TMDB: each page from 2 on starts with the previous page's last movie, and its own first is missed."""
    first = (page - 1) * RESULTS_PER_PAGE
    ids = [movie_id_at(slot) for slot in range(first, first + RESULTS_PER_PAGE)]
    if duplicates and page > 1:
        ids[0] = movie_id_at(first - 1)
    return ids


def top_rated_page(page: int, *, total_pages: int, duplicates: bool = False) -> dict:
    """`GET /movie/top_rated?language=pt-BR&page=N`; pages past `total_pages` are empty, as on TMDB."""
    results = [list_result(i) for i in page_ids(page, duplicates=duplicates)] if page <= total_pages else []
    return {"page": page, "results": results, "total_pages": total_pages, "total_results": total_pages * RESULTS_PER_PAGE}


def expected_records(
    pages: int, genre_ids=(DRAMA, ROMANCE), *, duplicates: bool = False, missing_ids=(), last_page: int = MAX_PAGE
) -> list[dict]:
    """What a correct collection of the first `pages` pages returns: each matching movie once, by id."""
    ids = {i for n in range(1, min(pages, last_page) + 1) for i in page_ids(n, duplicates=duplicates)}
    wanted = set(genre_ids)
    kept = [i for i in ids if i not in set(missing_ids) and wanted & set(list_result(i)["genre_ids"])]
    return [movie_details(i) for i in sorted(kept)]


def snapshot_content(pages: int = SNAPSHOT_PAGES) -> tuple[list[dict], list[dict]]:
    """The offline snapshot: the first `pages` top_rated pages as served (with the rank-shift repeats a
    real recording has) and the details of every movie they list, so any genre filter works offline."""
    bodies = [top_rated_page(n, total_pages=pages, duplicates=True) for n in range(1, pages + 1)]
    ids = sorted({r["id"] for body in bodies for r in body["results"]})
    return bodies, [movie_details(i) for i in ids]


def write_snapshot(directory: Path = SNAPSHOT_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    bodies, movies = snapshot_content()
    for name, content in ((SNAPSHOT_PAGES_FILE, bodies), (SNAPSHOT_MOVIES_FILE, movies)):
        data = json.dumps(content, ensure_ascii=False, indent=None).encode()
        (directory / name).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))


# ---------------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    t: float  # time.monotonic() at arrival
    path: str
    query: dict[str, str]
    status: int  # what the server answered (or would have, for `reset`/`slow`)
    fault: str | None  # the injected fault, if any
    bearer: bool  # an Authorization: Bearer header was sent
    api_key: bool  # an api_key query parameter was sent
    authorized: bool  # the credential sent is the right one


FAULTS = ("500", "502", "503", "504", "reset", "slow", "429-json", "429-text")


class FakeTMDB:
    """A real HTTP server on 127.0.0.1 that answers like TMDB's `/3/movie/top_rated` and `/3/movie/{id}`.

    Knobs:
      total_pages        what top_rated claims (pages past it answer an empty page, as TMDB does)
      max_page           pages above it answer 422 `{"errors": [...]}` (TMDB: 500)
      duplicates         ranks shift between pages: each page repeats the previous page's last movie
      missing_ids        ids whose details answer 404 (status_code 34): deleted after being listed
      latency_s          added to every answer except 429s and injected faults
      rate_limit_per_s   sliding one-second window of accepted requests; over it: 429
      rate_limit_bodies  429 bodies in turn: "json" (status_code 25) and/or "text"
      retry_after_s      Retry-After header on 429s (None: no header)
      faults             {path: [fault, ...]}: the next requests to that path get these faults in order
      fault_rate         fraction of requests that get a random fault from `fault_kinds`
      slow_s             how long a `slow` answer takes (longer than the client's timeout)
    """

    def __init__(
        self,
        *,
        total_pages: int = SNAPSHOT_PAGES,
        max_page: int = MAX_PAGE,
        duplicates: bool = False,
        missing_ids=(),
        latency_s: float = 0.0,
        rate_limit_per_s: float | None = None,
        rate_limit_bodies=("json", "text"),
        retry_after_s: int | None = None,
        faults: dict[str, list[str]] | None = None,
        fault_rate: float = 0.0,
        fault_kinds=("500", "502", "503", "504", "reset"),
        slow_s: float = 1.0,
        read_access_token: str = TOKEN,
        api_key: str = API_KEY,
        seed: int = 7,
    ):
        self.total_pages, self.max_page, self.duplicates = total_pages, max_page, duplicates
        self.missing_ids = set(missing_ids)
        self.latency_s, self.rate_limit_per_s, self.slow_s = latency_s, rate_limit_per_s, slow_s
        self.rate_limit_bodies, self.retry_after_s = tuple(rate_limit_bodies), retry_after_s
        self.faults = {path: deque(kinds) for path, kinds in (faults or {}).items()}
        for kinds in self.faults.values():
            assert set(kinds) <= set(FAULTS), kinds
        self.fault_rate, self.fault_kinds = fault_rate, tuple(fault_kinds)
        self.read_access_token, self.api_key = read_access_token, api_key
        self.hits: list[Hit] = []
        self.max_in_flight = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()
        self._limited = 0
        self._in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> FakeTMDB:
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-tmdb", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/3"

    # -- what the tests read -----------------------------------------------------------------------

    def paths(self, prefix: str = "") -> list[str]:
        return [h.path for h in self.hits if h.path.startswith(prefix)]

    def pages_requested(self) -> list[int]:
        return sorted(int(h.query.get("page", 1)) for h in self.hits if h.path == "/3/movie/top_rated")

    def detail_ids_requested(self) -> list[int]:
        prefix = "/3/movie/"
        return [int(h.path[len(prefix) :]) for h in self.hits if h.path.startswith(prefix) and h.path[len(prefix) :].isdigit()]

    def max_requests_in_window(self, window_s: float = 1.0) -> int:
        """The most requests (all of them, 429s included) that arrived within any `window_s` span."""
        times = sorted(h.t for h in self.hits)
        return max((bisect.bisect_left(times, t + window_s) - i for i, t in enumerate(times)), default=0)

    def achieved_rate(self) -> float:
        times = sorted(h.t for h in self.hits)
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0

    # -- request handling --------------------------------------------------------------------------

    def _admit(self, now: float) -> bool:
        if self.rate_limit_per_s is None:
            return True
        while self._accepted and self._accepted[0] <= now - 1.0:
            self._accepted.popleft()
        if len(self._accepted) >= self.rate_limit_per_s:
            return False
        self._accepted.append(now)
        return True

    def _next_fault(self, path: str) -> str | None:
        scripted = self.faults.get(path)
        if scripted:
            return scripted.popleft()
        if self.fault_rate and self._rng.random() < self.fault_rate:
            return self._rng.choice(self.fault_kinds)
        return None

    def _handle(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        auth_header = handler.headers.get("Authorization", "")
        bearer = auth_header.startswith("Bearer ")
        authorized = (bearer and auth_header[len("Bearer ") :] == self.read_access_token) or (
            "api_key" in query and query["api_key"] == self.api_key
        )
        with self._lock:
            now = time.monotonic()
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            fault = None if self._admit(now) else "rate-limit"
            if fault is None:
                fault = self._next_fault(url.path)
            if fault == "rate-limit":
                self._limited += 1
                body_kind = self.rate_limit_bodies[self._limited % len(self.rate_limit_bodies)]
                fault = f"429-{body_kind}"
            count = len(self._accepted) + 1
        try:
            if fault is None:
                status, body, content_type = self._route(url.path, query, authorized)
                time.sleep(self.latency_s)
            else:
                status, body, content_type = _fault_answer(fault, count, self.rate_limit_per_s)
            with self._lock:
                self.hits.append(Hit(now, url.path, query, status, fault, bearer, "api_key" in query, authorized))
            if fault == "reset":
                handler.reset_connection()  # raises _Dropped: nothing is answered
            if fault == "slow":
                time.sleep(self.slow_s)
            headers = {}
            if status == 429 and self.retry_after_s is not None:
                headers["Retry-After"] = str(self.retry_after_s)
            handler.answer(status, body, content_type, headers)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, path: str, query: dict[str, str], authorized: bool) -> tuple[int, bytes, str]:
        if not authorized:
            return _json(
                401, {"status_code": 7, "status_message": "Invalid API key: You must be granted a valid key.", "success": False}
            )
        if path == "/3/movie/top_rated":
            page = int(query.get("page", "1"))
            if page < 1:
                return _json(422, {"errors": ["page must be greater than 0"]})
            if page > self.max_page:
                return _json(422, {"errors": [f"page must be less than or equal to {self.max_page}"]})
            return _json(200, top_rated_page(page, total_pages=self.total_pages, duplicates=self.duplicates))
        if path.startswith("/3/movie/") and path[len("/3/movie/") :].isdigit():
            movie_id = int(path[len("/3/movie/") :])
            details = None if movie_id in self.missing_ids else movie_details(movie_id)
            if details is not None:
                return _json(200, details)
        return _json(
            404, {"status_code": 34, "status_message": "The resource you requested could not be found.", "success": False}
        )


def _json(status: int, body) -> tuple[int, bytes, str]:
    return status, json.dumps(body, ensure_ascii=False).encode(), "application/json;charset=utf-8"


def _fault_answer(fault: str, count: int, limit: float | None) -> tuple[int, bytes, str]:
    limit_text = f"{limit:g}" if limit else "40"
    if fault == "429-json":
        return _json(
            429,
            {
                "status_code": 25,
                "status_message": f"Your request count ({count}) is over the allowed limit of ({limit_text}).",
                "success": False,
            },
        )
    if fault == "429-text":
        return 429, f"Your request count ({count}) is over the allowed limit of {limit_text}.".encode(), "text/plain"
    if fault == "500":
        return _json(
            500, {"status_code": 11, "status_message": "Internal error: Something went wrong, contact TMDB.", "success": False}
        )
    if fault == "503":
        return _json(
            503,
            {
                "status_code": 9,
                "status_message": "Service offline: This service is temporarily offline, try again later.",
                "success": False,
            },
        )
    if fault in ("502", "504"):
        reason = {"502": "Bad Gateway", "504": "Gateway Time-out"}[fault]
        html = f"<html><head><title>{fault} {reason}</title></head><body><center><h1>{fault} {reason}</h1></center></body></html>"
        return int(fault), html.encode(), "text/html"
    # reset and slow: a normal answer the client will never get in time (or at all).
    return 200, b"{}", "application/json;charset=utf-8"


class _Dropped(Exception):
    """The connection was reset on purpose; nothing more to write."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # Clients that time out or are reset on purpose break pipes; that is the point, not an error.
        pass


def _handler_for(fake: FakeTMDB) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_fake = fake

    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection pool is exercised
    timeout = 10
    server_fake: FakeTMDB

    def do_GET(self) -> None:
        self.server_fake._handle(self)

    def answer(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def reset_connection(self) -> None:
        """Close with a TCP RST, as a dropped load-balancer connection does."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        raise _Dropped

    def log_message(self, format, *args) -> None:
        pass


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-snapshot", action="store_true", help=f"regenerate {SNAPSHOT_DIR}")
    args = parser.parse_args()
    if args.write_snapshot:
        write_snapshot()
        print(f"wrote {SNAPSHOT_DIR}")
    else:
        parser.print_help()
