"""ML models the buyers train or load (imported by module; nothing heavy at package import)."""
