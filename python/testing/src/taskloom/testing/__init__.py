"""Test support shared by Taskloom's Python tests; installed only in the development venv,
so that no fake ships inside a production package."""
