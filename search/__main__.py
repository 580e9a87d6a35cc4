"""`python -m search` runs the `xlsearch` command line."""

from search.cli import main

# Guarded: processes started with "spawn" (sentence-transformers' pool, language detection)
# import the parent's main module again, and must not run the command line a second time.
if __name__ == "__main__":
    main()
