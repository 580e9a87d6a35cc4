"""xlsearch ingestion: source readers, language detection, chunking and the ingest pipeline."""
