"""Coverage-guided fuzzing of the request reader and the handler with atheris (docs/fuzzing.md)."""
