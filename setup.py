"""The packages, with the repository's `web/` and `data/` folders installed inside `search` (as
`search/web` and `search/sample`) so that a wheel carries the page and the sample corpus; the
rest of the metadata is in pyproject.toml. See search/bundled.py for how they are found."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["search*", "indexer*", "migrations*"]),
        "search.web",
        "search.sample",
    ],
    package_dir={"search.web": "web", "search.sample": "data"},
)
