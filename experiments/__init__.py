"""Presets (functions returning configs) and paper-reproduction scripts."""
