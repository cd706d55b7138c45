"""QRunnable workers and the jobs they run around core calls; no widgets here."""
