"""`python -m search` runs the `xlsearch` command line."""

from search.cli import main

main()
