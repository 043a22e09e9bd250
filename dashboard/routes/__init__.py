"""Routes, one module per concept: sign-in, pages, form actions, files (exports, feeds), API."""
