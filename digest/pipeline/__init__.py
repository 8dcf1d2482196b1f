"""The pipeline: sources → gather → rank → render, and the archive views."""
