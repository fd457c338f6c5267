"""Data the buyers use: document corpora with questions (RAG), built in or loaded from files."""
