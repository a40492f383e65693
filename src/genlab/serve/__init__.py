"""genlab serve: the studio in the browser (see app.py)."""
